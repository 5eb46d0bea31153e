//! Finding the entrypoint: `argv[0]` looked up in the spec's `PATH` (or the default one),
//! inside the container's root filesystem, as `execvp` would but without a libc.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// `PATH` when the spec's environment has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The value of `key` in a `KEY=VALUE` environment, the first one if it is repeated.
pub fn env_value<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter().find_map(|e| e.split_once('=').filter(|(k, _)| *k == key).map(|(_, v)| v))
}

/// The program `argv0` names, as a path inside the root filesystem seen at `root` (the init
/// calls this after its chroot, with `/`). A name with a `/` is taken as it is; a bare name is
/// searched in `path` (a `PATH` value: absolute directories only, empty and relative entries
/// skipped) for a regular file with an execute bit.
pub fn find_executable(root: &Path, argv0: &str, path: &str) -> Result<String, String> {
    if argv0.is_empty() {
        return Err("empty program name".to_string());
    }
    if argv0.contains('/') {
        return Ok(argv0.to_string());
    }
    for dir in path.split(':').filter(|d| d.starts_with('/')) {
        let candidate = format!("{}/{argv0}", dir.trim_end_matches('/'));
        let on_host = root.join(candidate.trim_start_matches('/'));
        if let Ok(meta) = std::fs::metadata(&on_host)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(format!("{argv0:?} not found in PATH {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn file(root: &Path, path: &str, mode: u32) {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn searches_path_in_order_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        file(root, "usr/bin/tool", 0o755);
        file(root, "usr/local/bin/tool", 0o644); // not executable: skipped
        fs::create_dir_all(root.join("bin/dir-not-file")).unwrap();
        assert_eq!(find_executable(root, "tool", DEFAULT_PATH).unwrap(), "/usr/bin/tool");
        file(root, "opt/app/tool", 0o700);
        assert_eq!(find_executable(root, "tool", "relative:/opt/app/:/usr/bin").unwrap(), "/opt/app/tool");
        assert!(find_executable(root, "dir-not-file", DEFAULT_PATH).is_err());
        assert!(find_executable(root, "missing", DEFAULT_PATH).unwrap_err().contains("missing"));
        assert!(find_executable(root, "", DEFAULT_PATH).is_err());
    }

    #[test]
    fn names_with_a_slash_are_taken_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(find_executable(dir.path(), "./run.sh", DEFAULT_PATH).unwrap(), "./run.sh");
        assert_eq!(find_executable(dir.path(), "/app/run", "").unwrap(), "/app/run");
    }

    #[test]
    fn env_lookup() {
        let env = vec!["PATHX=1".to_string(), "PATH=/a:/b".to_string(), "PATH=/c".to_string(), "E=".to_string()];
        assert_eq!(env_value(&env, "PATH"), Some("/a:/b"));
        assert_eq!(env_value(&env, "E"), Some(""));
        assert_eq!(env_value(&env, "HOME"), None);
    }
}
