//! The user a container runs as, resolved the way Docker and runc do it: the image config's
//! `user` string against the root filesystem's `/etc/passwd` and `/etc/group` (no NSS, no
//! libc), numeric ids used as they are even when no entry names them.

/// Who the entrypoint runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// The supplementary groups: the primary group first, then every group in `/etc/group`
    /// that lists the user's name as a member.
    pub groups: Vec<u32>,
    /// The home directory from `/etc/passwd` (`/` when there is no entry), for `HOME`.
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

/// Resolves `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`, or a mix) against the text
/// of `/etc/passwd` and `/etc/group` (either may be empty when the file is missing).
pub fn resolve_user(user: &str, passwd: &str, group: &str) -> Result<User, String> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let users: Vec<PasswdEntry<'_>> = passwd.lines().filter_map(passwd_entry).collect();
    let groups: Vec<GroupEntry<'_>> = group.lines().filter_map(group_entry).collect();

    let entry = if user_part.is_empty() {
        users.iter().find(|e| e.uid == 0)
    } else if let Some(uid) = numeric_id(user_part)? {
        users.iter().find(|e| e.uid == uid)
    } else {
        let found = users.iter().find(|e| e.name == user_part);
        if found.is_none() {
            return Err(format!("user {user_part:?} not found in /etc/passwd"));
        }
        found
    };
    let uid = match (entry, numeric_id(user_part)?) {
        (_, Some(uid)) => uid,
        (Some(e), None) => e.uid,
        (None, None) => 0,
    };
    let mut gid = entry.map_or(0, |e| e.gid);
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match numeric_id(g)? {
            Some(gid) => gid,
            None => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| format!("group {g:?} not found in /etc/group"))?,
        };
    }
    let mut supplementary = vec![gid];
    if let Some(e) = entry {
        for g in &groups {
            if g.members.split(',').any(|m| m.trim() == e.name) && !supplementary.contains(&g.gid) {
                supplementary.push(g.gid);
            }
        }
    }
    let home = entry.map(|e| e.home).filter(|h| h.starts_with('/')).unwrap_or("/").to_string();
    Ok(User { uid, gid, groups: supplementary, home })
}

/// A decimal id, `None` for a name; an all-digit string that is not a valid id is an error.
fn numeric_id(s: &str) -> Result<Option<u32>, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(id) if id != u32::MAX => Ok(Some(id)),
        _ => Err(format!("id {s} is out of range")),
    }
}

fn passwd_entry(line: &str) -> Option<PasswdEntry<'_>> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 7 || f[0].is_empty() || f[0].starts_with('#') {
        return None;
    }
    Some(PasswdEntry { name: f[0], uid: f[2].parse().ok()?, gid: f[3].parse().ok()?, home: f[5] })
}

fn group_entry(line: &str) -> Option<GroupEntry<'_>> {
    let f: Vec<&str> = line.split(':').collect();
    if f.len() < 4 || f[0].is_empty() || f[0].starts_with('#') {
        return None;
    }
    Some(GroupEntry { name: f[0], gid: f[2].parse().ok()?, members: f[3] })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        # a comment\n\
        broken line\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
        app:x:1000:1000::relative:/bin/sh\n";
    const GROUP: &str = "root:x:0:\n\
        adm:x:4:app,www-data\n\
        www-data:x:33:\n\
        video:x:44: app \n\
        users:x:100:\n\
        nogroup:x:65534:\n\
        app:x:1000:\n";

    fn resolve(user: &str) -> Result<User, String> {
        resolve_user(user, PASSWD, GROUP)
    }

    #[test]
    fn empty_is_root() {
        assert_eq!(resolve("").unwrap(), User { uid: 0, gid: 0, groups: vec![0], home: "/root".into() });
        assert_eq!(resolve_user("", "", "").unwrap(), User { uid: 0, gid: 0, groups: vec![0], home: "/".into() });
    }

    #[test]
    fn names_resolve_with_supplementary_groups() {
        assert_eq!(
            resolve("www-data").unwrap(),
            User { uid: 33, gid: 33, groups: vec![33, 4], home: "/var/www".into() }
        );
        // A relative home in passwd is not used.
        assert_eq!(resolve("app").unwrap(), User { uid: 1000, gid: 1000, groups: vec![1000, 4, 44], home: "/".into() });
        assert_eq!(resolve("app:users").unwrap().groups, vec![100, 4, 44]);
        assert_eq!(resolve("nobody:nogroup").unwrap().gid, 65534);
    }

    #[test]
    fn numeric_ids_are_used_as_they_are() {
        // A uid with an entry takes its group and home...
        assert_eq!(resolve("33").unwrap(), User { uid: 33, gid: 33, groups: vec![33, 4], home: "/var/www".into() });
        // ...one without gets group 0, or the one given.
        assert_eq!(resolve("4242").unwrap(), User { uid: 4242, gid: 0, groups: vec![0], home: "/".into() });
        assert_eq!(resolve("4242:4343").unwrap(), User { uid: 4242, gid: 4343, groups: vec![4343], home: "/".into() });
        assert_eq!(resolve("daemon:4343").unwrap().gid, 4343);
        assert_eq!(resolve("1000:adm").unwrap().gid, 4);
        assert_eq!(resolve_user("1000:1000", "", "").unwrap().uid, 1000);
    }

    #[test]
    fn unknown_names_and_bad_ids_are_errors() {
        assert!(resolve("ghost").unwrap_err().contains("ghost"));
        assert!(resolve("app:ghosts").unwrap_err().contains("ghosts"));
        assert!(resolve("4294967295").is_err());
        assert!(resolve("99999999999").is_err());
    }
}
