//! The run configuration of an image (the `config` section of its image config) and Docker's
//! rules for the command line when a user overrides the entrypoint or the cmd.

use oci_spec::image::ImageConfiguration;

use crate::Error;

/// How the image asks to be run; fields the image leaves out are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunConfig {
    /// `Entrypoint`: the executable and its fixed arguments.
    pub entrypoint: Vec<String>,
    /// `Cmd`: default arguments to the entrypoint, or the command when there is none.
    pub cmd: Vec<String>,
    /// `Env`: `NAME=value` entries.
    pub env: Vec<String>,
    /// `WorkingDir`: the directory to start in; empty means `/`.
    pub working_dir: String,
    /// `User`: `user`, `uid`, `user:group` or `uid:gid`; empty means root.
    pub user: String,
}

impl RunConfig {
    pub(crate) fn from_image(config: &ImageConfiguration) -> RunConfig {
        let Some(c) = config.config() else { return RunConfig::default() };
        RunConfig {
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().unwrap_or_default(),
            user: c.user().clone().unwrap_or_default(),
        }
    }

    /// The run configuration in an image config file as EVE's volume manager writes it beside a
    /// container's root filesystem (`image-config.json`: the OCI image configuration).
    pub fn read_image_config(path: &std::path::Path) -> Result<RunConfig, Error> {
        let text = std::fs::read(path).map_err(|source| Error::Read {
            image: path.to_owned(),
            what: "the image configuration".into(),
            source,
        })?;
        let config: ImageConfiguration = serde_json::from_slice(&text).map_err(|e| Error::Format {
            image: path.to_owned(),
            why: format!("not an OCI image configuration: {e}"),
        })?;
        Ok(RunConfig::from_image(&config))
    }

    /// The command line to run, after a user's overrides, by Docker's rules: an overridden
    /// entrypoint (even an empty one) drops the image's cmd, so the result is the new
    /// entrypoint followed by the overriding cmd, if any; an overridden cmd alone replaces the
    /// image's cmd after the image's entrypoint. An empty result is [`Error::NoCommand`].
    pub fn argv(
        &self,
        entrypoint_override: Option<Vec<String>>,
        cmd_override: Option<Vec<String>>,
    ) -> Result<Vec<String>, Error> {
        let (mut argv, cmd) = match entrypoint_override {
            Some(entrypoint) => (entrypoint, cmd_override.unwrap_or_default()),
            None => (self.entrypoint.clone(), cmd_override.unwrap_or_else(|| self.cmd.clone())),
        };
        argv.extend(cmd);
        if argv.is_empty() { Err(Error::NoCommand) } else { Ok(argv) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn image() -> RunConfig {
        RunConfig { entrypoint: v(&["/bin/tini", "--"]), cmd: v(&["nginx", "-g", "daemon off;"]), ..Default::default() }
    }

    #[test]
    fn an_image_config_file_as_eve_writes_it_is_read_and_a_bad_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image-config.json");
        std::fs::write(
            &path,
            r#"{"architecture": "amd64", "os": "linux",
                "config": {"Entrypoint": ["/bin/sh"], "Cmd": ["-c", "id"], "Env": ["PATH=/bin"],
                           "WorkingDir": "/srv", "User": "app"},
                "rootfs": {"type": "layers", "diff_ids": []}}"#,
        )
        .unwrap();
        let c = RunConfig::read_image_config(&path).unwrap();
        assert_eq!(
            (c.argv(None, None).unwrap(), c.env, c.working_dir, c.user),
            (v(&["/bin/sh", "-c", "id"]), v(&["PATH=/bin"]), "/srv".to_string(), "app".to_string())
        );
        std::fs::write(&path, b"{\"config\": 3}").unwrap();
        let e = RunConfig::read_image_config(&path).unwrap_err().to_string();
        assert!(e.contains("image-config.json") && e.contains("not an OCI image configuration"), "{e}");
        let e = RunConfig::read_image_config(&dir.path().join("nope.json")).unwrap_err().to_string();
        assert!(e.contains("nope.json"), "{e}");
    }

    #[test]
    fn image_defaults_are_entrypoint_then_cmd() {
        assert_eq!(image().argv(None, None).unwrap(), v(&["/bin/tini", "--", "nginx", "-g", "daemon off;"]));
    }

    #[test]
    fn a_cmd_override_keeps_the_entrypoint() {
        assert_eq!(image().argv(None, Some(v(&["sh"]))).unwrap(), v(&["/bin/tini", "--", "sh"]));
    }

    #[test]
    fn an_entrypoint_override_drops_the_image_cmd() {
        assert_eq!(image().argv(Some(v(&["/bin/sh"])), None).unwrap(), v(&["/bin/sh"]));
        assert_eq!(image().argv(Some(v(&["/bin/sh"])), Some(v(&["-c", "id"]))).unwrap(), v(&["/bin/sh", "-c", "id"]));
    }

    #[test]
    fn an_empty_entrypoint_override_runs_the_given_cmd_only() {
        assert_eq!(image().argv(Some(vec![]), Some(v(&["ls"]))).unwrap(), v(&["ls"]));
        assert!(matches!(image().argv(Some(vec![]), None), Err(Error::NoCommand)));
    }

    #[test]
    fn cmd_alone_is_the_command() {
        let config = RunConfig { cmd: v(&["/bin/sh"]), ..Default::default() };
        assert_eq!(config.argv(None, None).unwrap(), v(&["/bin/sh"]));
        assert!(matches!(RunConfig::default().argv(None, None), Err(Error::NoCommand)));
        assert!(matches!(config.argv(None, Some(vec![])), Err(Error::NoCommand)));
    }
}
