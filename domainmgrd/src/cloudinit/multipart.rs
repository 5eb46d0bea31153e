//! MIME multipart user data laid out as files, as EVE's domainmgr does for a guest that cannot
//! take multipart user data apart itself (`MetaDataType` 3, or the host setting
//! `process.cloud-init.multipart`): each part becomes the file its `Content-Disposition`
//! `filename` names (directories included) on the config disk. Anything that is not a
//! multipart message with a boundary is not multipart, and then the caller writes the usual
//! `meta-data` and `user-data`; a multipart message that cannot be laid out is an error.

use std::collections::BTreeMap;

use mailparse::body::Body;

/// The files of a multipart message, by path relative to the disk's root (`/`-separated,
/// normalised: no `.`, `..` or empty components); `None` when it is not multipart.
pub(super) fn layout(user_data: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
    // Go's mail.ReadMessage refuses a header block with a malformed line: such user data (a
    // plain `#cloud-config`, a script) is not a message at all, whatever follows.
    if !has_message_headers(user_data) {
        return Ok(None);
    }
    let Ok(message) = mailparse::parse_mail(user_data.as_bytes()) else {
        return Ok(None);
    };
    let has_content_type = message.headers.iter().any(|h| h.get_key_ref().eq_ignore_ascii_case("Content-Type"));
    if !has_content_type
        || !message.ctype.mimetype.starts_with("multipart/")
        || !message.ctype.params.contains_key("boundary")
    {
        return Ok(None);
    }
    let mut files = BTreeMap::new();
    for (i, part) in message.subparts.iter().enumerate() {
        let disposition = part.get_content_disposition();
        let Some(name) = disposition.params.get("filename").filter(|n| !n.is_empty()) else {
            return Err(format!("part {} has no file name (Content-Disposition filename)", i + 1));
        };
        let path = normalise(name).ok_or_else(|| format!("part {}: file name {name:?} leaves the disk", i + 1))?;
        // Go's multipart reader undoes quoted-printable, and no other transfer encoding.
        let body = match part.get_body_encoded() {
            Body::QuotedPrintable(b) => b.get_decoded().map_err(|e| format!("part {}: {e}", i + 1))?,
            _ => {
                let (_, at) = mailparse::parse_headers(part.raw_bytes).map_err(|e| format!("part {}: {e}", i + 1))?;
                part.raw_bytes[at..].to_vec()
            }
        };
        // A later part of the same name replaces an earlier one (EVE rewrites the file); a file
        // where a directory must be, or the reverse, cannot be laid out.
        let clash = files.keys().any(|k: &String| {
            k.strip_prefix(path.as_str()).is_some_and(|rest| rest.starts_with('/'))
                || path.strip_prefix(k.as_str()).is_some_and(|rest| rest.starts_with('/'))
        });
        if clash {
            return Err(format!("part {}: {path:?} is both a file and a directory", i + 1));
        }
        files.insert(path, body);
    }
    Ok(Some(files))
}

/// Whether the text starts with a header block Go's `mail.ReadMessage` reads: lines
/// `Name: value` (a name of printable ASCII without spaces or colons) or continuation lines
/// (a space or tab first, never the first line), up to an empty line or the end.
fn has_message_headers(text: &str) -> bool {
    let mut first = true;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            return !first;
        }
        if line.starts_with([' ', '\t']) {
            if first {
                return false;
            }
            continue;
        }
        let Some((name, _)) = line.split_once(':') else {
            return false;
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return false;
        }
        first = false;
    }
    !first
}

/// A part's file name as a path under the disk's root: `.` and empty components dropped, `..`
/// taking one back; `None` when it would leave the root or names the root itself. A leading
/// `/` is under the root too (Go joins it to the directory).
fn normalise(name: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTIPART: &str = "Content-Type: multipart/mixed; boundary=\"XYZ\"\nMIME-Version: 1.0\n\n\
        preamble\n\
        --XYZ\nContent-Type: text/plain\nContent-Disposition: attachment; filename=\"meta-data\"\n\n\
        instance-id: i-1\n\
        --XYZ\nContent-Type: text/cloud-config\nContent-Disposition: attachment; filename=\"user-data\"\n\n\
        #cloud-config\nhostname: h\n\n\
        --XYZ\nContent-Disposition: attachment; filename=\"/openstack/latest/network_data.json\"\n\
        Content-Transfer-Encoding: quoted-printable\n\n\
        {\"a\":=\n1}\n\
        --XYZ\nContent-Disposition: attachment; filename=\"b64\"\nContent-Transfer-Encoding: base64\n\n\
        aGk=\n\
        --XYZ--\n";

    #[test]
    fn parts_become_files_as_eve_lays_them_out() {
        let files = layout(MULTIPART).unwrap().unwrap();
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(names, ["b64", "meta-data", "openstack/latest/network_data.json", "user-data"]);
        assert_eq!(files["meta-data"], b"instance-id: i-1");
        // The line break before a boundary belongs to the boundary; blank lines in the part stay.
        assert_eq!(files["user-data"], b"#cloud-config\nhostname: h\n");
        assert_eq!(files["openstack/latest/network_data.json"], b"{\"a\":1}", "quoted-printable undone");
        assert_eq!(files["b64"], b"aGk=", "base64 is not undone (Go's multipart reader does not)");
    }

    #[test]
    fn what_is_not_multipart_is_left_to_the_caller() {
        for text in [
            "#cloud-config\nhostname: h\n",
            "#!/bin/sh\necho hi\n",
            "Content-Type: text/plain\n\nhello\n",
            "Content-Type: multipart/mixed\n\nno boundary\n",
            "Subject: x\n\n--XYZ\n",
            " Content-Type: multipart/mixed; boundary=X\n\n--X\n",
            "",
            "#cloud-config\nContent-Type: multipart/mixed; boundary=X\n\n--X\n",
        ] {
            assert_eq!(layout(text).unwrap(), None, "{text:?}");
        }
    }

    #[test]
    fn names_that_leave_the_disk_or_are_missing_are_errors() {
        let part = |disposition: &str| {
            format!("Content-Type: multipart/mixed; boundary=B\n\n--B\n{disposition}\n\nx\n--B--\n")
        };
        let e = layout(&part("Content-Disposition: attachment; filename=\"../../etc/passwd\"")).unwrap_err();
        assert!(e.contains("leaves the disk"), "{e}");
        let e = layout(&part("Content-Disposition: attachment; filename=\"a/../..\"")).unwrap_err();
        assert!(e.contains("leaves the disk"), "{e}");
        let e = layout(&part("Content-Type: text/plain")).unwrap_err();
        assert!(e.contains("part 1 has no file name"), "{e}");
        let files = layout(&part("Content-Disposition: attachment; filename=\"./a/./b/../c\"")).unwrap().unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), ["a/c"]);
        let clash = "Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Disposition: a; filename=a\n\nx\n\
                     --B\nContent-Disposition: a; filename=a/b\n\ny\n--B--\n";
        assert!(layout(clash).unwrap_err().contains("both a file and a directory"));
    }
}
