//! Names of copies: `<dir>/<image>-<uuid>.<ext>` as EVE's domainmgr names them, each part checked
//! so that a name from a config can neither leave the directory nor look like a temporary file.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// The suffix of a copy being made: `<final>.partial`. Files with it are never reused.
pub const PARTIAL_SUFFIX: &str = ".partial";

/// The longest file name most Linux filesystems take (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// The path of a domain's copy of an image: `<persist_img_dir>/<image>-<uuid>.<ext>`.
///
/// Each part must be non-empty, not `.` or `..`, and hold no `/` or NUL; the whole name must
/// leave room for [`PARTIAL_SUFFIX`] within 255 bytes and must not itself end in it.
pub fn copy_path(persist_img_dir: &Path, image: &str, uuid: &str, ext: &str) -> Result<PathBuf> {
    check_part("image", image)?;
    check_part("uuid", uuid)?;
    check_part("ext", ext)?;
    let name = format!("{image}-{uuid}.{ext}");
    if name.ends_with(PARTIAL_SUFFIX) {
        return Err(Error::BadName { part: "ext", value: ext.to_owned(), why: "the name would end in .partial" });
    }
    if name.len() + PARTIAL_SUFFIX.len() > NAME_MAX {
        return Err(Error::BadName { part: "image", value: image.to_owned(), why: "the name would be too long" });
    }
    Ok(persist_img_dir.join(name))
}

/// One part of a name: a single path component that is not special.
fn check_part(part: &'static str, value: &str) -> Result<()> {
    let why = if value.is_empty() {
        "it is empty"
    } else if value == "." || value == ".." {
        "it is a special directory name"
    } else if value.contains('/') {
        "it contains '/'"
    } else if value.contains('\0') {
        "it contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::BadName { part, value: value.to_owned(), why })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_copy_after_image_uuid_and_ext() {
        let p = copy_path(Path::new("/persist/img"), "ubuntu", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "qcow2");
        assert_eq!(p.unwrap(), Path::new("/persist/img/ubuntu-6ba7b810-9dad-11d1-80b4-00c04fd430c8.qcow2"));
    }

    #[test]
    fn rejects_parts_that_escape_or_are_special() {
        let dir = Path::new("/persist/img");
        let bad = [
            ("", "u", "img", "image"),
            ("a", "", "img", "uuid"),
            ("a", "u", "", "ext"),
            ("..", "u", "img", "image"),
            (".", "u", "img", "image"),
            ("a", "..", "img", "uuid"),
            ("a", "u", "..", "ext"),
            ("../../etc/passwd", "u", "img", "image"),
            ("a", "u/v", "img", "uuid"),
            ("a", "u", "img/x", "ext"),
            ("a\0b", "u", "img", "image"),
            ("a", "u", "i\0", "ext"),
            ("a", "u", "partial", "ext"),
            ("a", "u", "img.partial", "ext"),
        ];
        for (image, uuid, ext, part) in bad {
            match copy_path(dir, image, uuid, ext) {
                Err(Error::BadName { part: p, .. }) => assert_eq!(p, part, "{image:?} {uuid:?} {ext:?}"),
                other => panic!("{image:?} {uuid:?} {ext:?} gave {other:?}"),
            }
        }
        let long = "x".repeat(250);
        assert!(matches!(copy_path(dir, &long, "u", "img"), Err(Error::BadName { .. })));
    }
}
