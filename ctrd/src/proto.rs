//! The messages of containerd's snapshot service this crate sends and reads, with the field
//! numbers of containerd's `.proto` files (api/types/mount.proto and
//! api/services/snapshots/v1/snapshots.proto); fields not declared are skipped on decoding.

use std::collections::HashMap;

/// containerd.types.Mount.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Mount {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub source: String,
    #[prost(string, tag = "3")]
    pub target: String,
    #[prost(string, repeated, tag = "4")]
    pub options: Vec<String>,
}

/// PrepareSnapshotRequest and ViewSnapshotRequest (the same fields).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PrepareRequest {
    #[prost(string, tag = "1")]
    pub snapshotter: String,
    #[prost(string, tag = "2")]
    pub key: String,
    #[prost(string, tag = "3")]
    pub parent: String,
    #[prost(map = "string, string", tag = "4")]
    pub labels: HashMap<String, String>,
}

/// PrepareSnapshotResponse, ViewSnapshotResponse and MountsResponse (the same field).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MountsResponse {
    #[prost(message, repeated, tag = "1")]
    pub mounts: Vec<Mount>,
}

/// MountsRequest, RemoveSnapshotRequest and StatSnapshotRequest (the same fields).
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyRequest {
    #[prost(string, tag = "1")]
    pub snapshotter: String,
    #[prost(string, tag = "2")]
    pub key: String,
}

/// CommitSnapshotRequest.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CommitRequest {
    #[prost(string, tag = "1")]
    pub snapshotter: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub key: String,
    #[prost(map = "string, string", tag = "4")]
    pub labels: HashMap<String, String>,
}

/// google.protobuf.Empty.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Empty {}

/// snapshots.v1.Info (name, parent, kind; times and labels skipped).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub parent: String,
    #[prost(int32, tag = "3")]
    pub kind: i32,
}

/// StatSnapshotResponse.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatResponse {
    #[prost(message, optional, tag = "1")]
    pub info: Option<Info>,
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    /// The bytes protoc's encoding gives for a MountsRequest {snapshotter: "overlayfs", key: "k"}
    /// (field 1 length-delimited, field 2 length-delimited), and a Mount decoded from the same
    /// wire form containerd sends.
    #[test]
    fn messages_have_containerds_field_numbers() {
        let req = KeyRequest { snapshotter: "overlayfs".into(), key: "k".into() };
        assert_eq!(req.encode_to_vec(), b"\x0a\x09overlayfs\x12\x01k");
        let wire = b"\x0a\x23\x0a\x07overlay\x12\x07overlay\x22\x09index=off\x22\x04ro,x";
        let resp = MountsResponse::decode(&wire[..]).unwrap();
        assert_eq!(
            resp.mounts,
            vec![Mount {
                r#type: "overlay".into(),
                source: "overlay".into(),
                target: String::new(),
                options: vec!["index=off".into(), "ro,x".into()]
            }]
        );
    }
}
