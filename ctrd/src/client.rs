//! The client side of containerd's snapshot service: one [`Snapshots`] per socket, namespace
//! and snapshotter; each call connects, sends one unary gRPC request with the namespace in
//! containerd's `containerd-namespace` header, and waits for the answer under a deadline, on
//! a small runtime of its own, so callers stay plain blocking threads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;

use crate::proto;
use crate::{Error, Mount, Result};

/// The socket of the containerd that holds EVE's user apps.
pub const EVE_USER_SOCKET: &str = "/run/containerd-user/containerd.sock";
/// The namespace EVE keeps its user apps' images and snapshots in.
pub const DEFAULT_NAMESPACE: &str = "eve-user-apps";
/// The snapshotter EVE uses.
pub const DEFAULT_SNAPSHOTTER: &str = "overlayfs";
/// How long a call may take (EVE's containerd client uses 30 s).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const SERVICE: &str = "/containerd.services.snapshots.v1.Snapshots/";

/// What a snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// A read-only view of a committed snapshot.
    View,
    /// A writable snapshot (what a container runs on).
    Active,
    /// An immutable snapshot, a parent of others (an image's layers).
    Committed,
    /// A kind this crate does not know.
    Unknown(i32),
}

/// containerd's snapshot service on one socket, in one namespace, through one snapshotter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshots {
    socket: PathBuf,
    namespace: String,
    snapshotter: String,
}

impl Snapshots {
    /// The service at `socket`, for snapshots of `namespace` made by `snapshotter`.
    pub fn new(socket: impl Into<PathBuf>, namespace: &str, snapshotter: &str) -> Snapshots {
        Snapshots { socket: socket.into(), namespace: namespace.into(), snapshotter: snapshotter.into() }
    }

    /// EVE's: the user containerd's socket, `eve-user-apps`, `overlayfs`.
    pub fn eve() -> Snapshots {
        Snapshots::new(EVE_USER_SOCKET, DEFAULT_NAMESPACE, DEFAULT_SNAPSHOTTER)
    }

    /// The socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The mounts that give snapshot `key`'s file system (an active snapshot or a view).
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let req = proto::KeyRequest { snapshotter: self.snapshotter.clone(), key: key.into() };
        let resp: proto::MountsResponse = self.call("Mounts", key, req)?;
        Ok(resp.mounts.into_iter().map(Mount::from).collect())
    }

    /// Makes a writable snapshot `key` on top of committed snapshot `parent` (none: empty),
    /// labelled `labels`; its mounts.
    pub fn prepare(&self, key: &str, parent: &str, labels: &[(&str, &str)]) -> Result<Vec<Mount>> {
        self.prepare_or_view("Prepare", key, parent, labels)
    }

    /// Makes a read-only view `key` of committed snapshot `parent`; its mounts.
    pub fn view(&self, key: &str, parent: &str, labels: &[(&str, &str)]) -> Result<Vec<Mount>> {
        self.prepare_or_view("View", key, parent, labels)
    }

    fn prepare_or_view(
        &self,
        op: &'static str,
        key: &str,
        parent: &str,
        labels: &[(&str, &str)],
    ) -> Result<Vec<Mount>> {
        let req = proto::PrepareRequest {
            snapshotter: self.snapshotter.clone(),
            key: key.into(),
            parent: parent.into(),
            labels: labels_map(labels),
        };
        let resp: proto::MountsResponse = self.call(op, key, req)?;
        Ok(resp.mounts.into_iter().map(Mount::from).collect())
    }

    /// Commits active snapshot `key` as `name` (the active one is gone after).
    pub fn commit(&self, key: &str, name: &str, labels: &[(&str, &str)]) -> Result<()> {
        let req = proto::CommitRequest {
            snapshotter: self.snapshotter.clone(),
            name: name.into(),
            key: key.into(),
            labels: labels_map(labels),
        };
        let _: proto::Empty = self.call("Commit", key, req)?;
        Ok(())
    }

    /// Removes snapshot `key`. containerd does not know whether it is mounted: unmount first.
    pub fn remove(&self, key: &str) -> Result<()> {
        let req = proto::KeyRequest { snapshotter: self.snapshotter.clone(), key: key.into() };
        let _: proto::Empty = self.call("Remove", key, req)?;
        Ok(())
    }

    /// Snapshot `key`'s kind and parent.
    pub fn stat(&self, key: &str) -> Result<(SnapshotKind, String)> {
        let req = proto::KeyRequest { snapshotter: self.snapshotter.clone(), key: key.into() };
        let resp: proto::StatResponse = self.call("Stat", key, req)?;
        let info = resp.info.unwrap_or_default();
        let kind = match info.kind {
            1 => SnapshotKind::View,
            2 => SnapshotKind::Active,
            3 => SnapshotKind::Committed,
            n => SnapshotKind::Unknown(n),
        };
        Ok((kind, info.parent))
    }

    /// One unary call of method `op`, about snapshot `key`.
    fn call<Req, Resp>(&self, op: &'static str, key: &str, req: Req) -> Result<Resp>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let connect_error = |reason: String| Error::Connect { socket: self.socket.clone(), reason };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| connect_error(format!("no runtime: {e}")))?;
        let call = async {
            let socket = self.socket.clone();
            // The URI is a placeholder: the connector dials the socket.
            let channel = tonic::transport::Endpoint::from_static("http://[::1]:1")
                .connect_with_connector(tower::service_fn(move |_| {
                    let socket = socket.clone();
                    async move { tokio::net::UnixStream::connect(socket).await.map(hyper_util::rt::TokioIo::new) }
                }))
                .await
                .map_err(|e| connect_error(error_chain(&e)))?;
            let mut grpc = tonic::client::Grpc::new(channel);
            grpc.ready().await.map_err(|e| connect_error(error_chain(&e)))?;
            let mut request = tonic::Request::new(req);
            let namespace = self
                .namespace
                .parse()
                .map_err(|_| Error::Nul { what: "the containerd namespace", value: self.namespace.clone() })?;
            request.metadata_mut().insert("containerd-namespace", namespace);
            let path = PathAndQuery::try_from(format!("{SERVICE}{op}"))
                .map_err(|e| connect_error(format!("bad method {op}: {e}")))?;
            let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
            grpc.unary(request, path, codec).await.map(tonic::Response::into_inner).map_err(|status| Error::Call {
                op,
                key: key.into(),
                code: status.code(),
                message: status.message().into(),
            })
        };
        runtime.block_on(async {
            tokio::time::timeout(CALL_TIMEOUT, call).await.unwrap_or(Err(Error::Timeout {
                op,
                key: key.into(),
                seconds: CALL_TIMEOUT.as_secs(),
            }))
        })
    }
}

fn labels_map(labels: &[(&str, &str)]) -> HashMap<String, String> {
    labels.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
}

/// An error with its sources, on one line (tonic's transport errors say little on their own).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_socket_is_a_connect_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("containerd.sock");
        let e = Snapshots::new(&sock, DEFAULT_NAMESPACE, DEFAULT_SNAPSHOTTER).mounts("k").unwrap_err();
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("containerd.sock") && text.contains("No such file"), "{text}");
        assert!(!e.is_not_found());
    }

    #[test]
    fn a_socket_that_speaks_no_grpc_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("c.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            use std::io::Write;
            let (mut conn, _) = listener.accept().unwrap();
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        });
        let e = Snapshots::new(&sock, DEFAULT_NAMESPACE, DEFAULT_SNAPSHOTTER).mounts("k").unwrap_err();
        assert!(matches!(e, Error::Call { .. } | Error::Connect { .. }), "{e:?}");
        server.join().unwrap();
    }
}
