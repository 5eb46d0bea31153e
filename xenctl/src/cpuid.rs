//! A guest's CPUID policy (xl.cfg's `cpuid`), kept as the text xl.cfg gives and read by
//! libxl's own parsers when the domain config is built, exactly as `xl` reads it: the libxl
//! form `"host,tm=0,sse3=0"` goes token by token through `libxl_cpuid_parse_config`, the
//! xend list form `[ "0x1:ecx=...,edx=..." ]` item by item through
//! `libxl_cpuid_parse_config_xend`. libxl's result is an opaque, malloc'd policy list that the
//! build info owns (`libxl_domain_build_info_dispose` frees it), so it is built straight into
//! the config and nowhere else.
//!
//! xl does not stop at a token or item libxl cannot parse: it prints the error and goes on,
//! and what libxl had done before the error stays (an empty leaf entry, the registers before
//! a bad one). Applying the same text the same way gives the same policy, errors included;
//! [`CpuidPolicy::problems`] lists them so the xl.cfg reader can warn about each.

use std::ffi::c_char;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A CPUID policy as xl.cfg's `cpuid` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuidPolicy {
    /// libxl's form, `"host,NAME=VALUE,..."`: the host's policy, changed feature by feature
    /// (`NAME` a feature or field libxl knows, `VALUE` 0, 1, x, k, s or a number). xl ignores
    /// the whole string unless its first word is `host`.
    Libxl(String),
    /// xend's list form, one `"LEAF[,SUBLEAF]:eXx=32 CHARS,..."` per leaf, each register a
    /// 32-character bit mask (`0`, `1`, `x`, `k`, `s`).
    Xend(Vec<String>),
}

/// One token or item libxl refused, which xl skips (after whatever libxl did with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The list item it is in (the xend form), `None` for the libxl form.
    pub index: Option<usize>,
    /// The token or item.
    pub text: String,
    /// libxl's error, in xl's words.
    pub reason: &'static str,
}

impl CpuidPolicy {
    /// The policy built into `list` (a build info's `cpuid`, empty or not) as xl builds it;
    /// returns what libxl refused, which xl (and so this) skips.
    pub(crate) fn apply(&self, list: &mut xen_sys::libxl_cpuid_policy_list) -> Result<Vec<Problem>> {
        let mut problems = Vec::new();
        match self {
            CpuidPolicy::Libxl(text) => {
                // xl's strtok_r on ",": empty tokens vanish, and the first must be `host`.
                let mut tokens = text.split(',').filter(|t| !t.is_empty());
                match tokens.next() {
                    None => {}
                    Some("host") => {
                        for token in tokens {
                            let rc = parse_with(token, |p| {
                                // SAFETY: list is a valid policy list (NULL or libxl's own),
                                // p a NUL-terminated string live for the call; libxl only
                                // reads p and grows the list with malloc/realloc.
                                unsafe { xen_sys::libxl_cpuid_parse_config(list, p) }
                            })?;
                            if let Some(reason) = libxl_form_error(rc)? {
                                problems.push(Problem { index: None, text: token.to_string(), reason });
                            }
                        }
                    }
                    Some(_) => problems.push(Problem {
                        index: None,
                        text: text.clone(),
                        reason: "the first word must be \"host\"",
                    }),
                }
            }
            CpuidPolicy::Xend(items) => {
                for (i, item) in items.iter().enumerate() {
                    let rc = parse_with(item, |p| {
                        // SAFETY: as above; p is padded with NULs (see parse_with), since
                        // libxl reads two bytes past an `e` that ends the string.
                        unsafe { xen_sys::libxl_cpuid_parse_config_xend(list, p) }
                    })?;
                    if let Some(reason) = xend_form_error(rc) {
                        problems.push(Problem { index: Some(i), text: item.clone(), reason });
                    }
                }
            }
        }
        Ok(problems)
    }

    /// What libxl refuses in this policy (which xl skips), each with its place.
    pub(crate) fn problems(&self) -> Result<Vec<Problem>> {
        let mut list: xen_sys::libxl_cpuid_policy_list = std::ptr::null_mut();
        let problems = self.apply(&mut list);
        // SAFETY: list is NULL or the policy libxl built above, freed once here.
        unsafe { xen_sys::libxl_cpuid_dispose(&mut list) };
        problems
    }
}

/// Calls `f` with `text` as a C string followed by extra NULs: libxl's xend parser looks at
/// `str[2]` when `str[0]` is `e`, past the end of a string that ends in `e`.
fn parse_with(text: &str, f: impl FnOnce(*const c_char) -> i32) -> Result<i32> {
    if text.contains('\0') {
        return Err(Error::invalid("platform.cpuid", text.escape_debug().to_string(), "contains a NUL byte"));
    }
    let mut bytes = Vec::with_capacity(text.len() + 4);
    bytes.extend_from_slice(text.as_bytes());
    bytes.extend_from_slice(&[0; 4]);
    Ok(f(bytes.as_ptr().cast()))
}

/// xl's words for libxl_cpuid_parse_config's return codes.
fn libxl_form_error(rc: i32) -> Result<Option<&'static str>> {
    Ok(Some(match rc {
        0 => return Ok(None),
        1 => "missing \"=\" in key=value",
        2 => "unknown CPUID flag name",
        3 => "illegal CPUID value (must be: [0|1|x|k|s])",
        xen_sys::ERROR_NOMEM => return Err(Error::OutOfMemory { op: "parsing a CPUID policy" }),
        _ => "unknown error",
    }))
}

/// xl's words for libxl_cpuid_parse_config_xend's return codes.
fn xend_form_error(rc: i32) -> Option<&'static str> {
    Some(match rc {
        0 => return None,
        1 => "illegal leaf number",
        2 => "illegal subleaf number",
        3 => "missing colon",
        4 => "invalid register name (must be e[abcd]x)",
        5 => "policy string must be exactly 32 characters long",
        _ => "unknown error",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libxl's JSON of the policy `p` builds (what `xl -N` prints as b_info.cpuid).
    fn json(p: &CpuidPolicy) -> serde_json::Value {
        let mut spec = crate::DomainSpec::hvm("c");
        spec.platform.cpuid = Some(p.clone());
        let v: serde_json::Value = serde_json::from_str(&spec.to_libxl_json().unwrap()).unwrap();
        v["b_info"]["cpuid"].clone()
    }

    #[test]
    fn the_libxl_form_sets_registers_and_msrs() {
        let p = CpuidPolicy::Libxl("host,tm=0,sse3=0,aes=x,rdcl-no=1".into());
        assert_eq!(p.problems().unwrap(), []);
        let j = json(&p);
        let leaf1 = &j["cpuid"][0];
        assert_eq!(leaf1["leaf"], 1);
        // sse3 is bit 0 of ecx, tm bit 29 of edx, aes bit 25 of ecx.
        assert_eq!(leaf1["ecx"], "x".repeat(31) + "0");
        assert_eq!(&leaf1["edx"].as_str().unwrap()[2..3], "0");
        assert_eq!(j["msr"][0]["index"], 0x10a, "rdcl-no is in MSR_ARCH_CAPABILITIES");
    }

    #[test]
    fn errors_are_skipped_as_xl_skips_them_keeping_what_libxl_did_before() {
        let p = CpuidPolicy::Libxl("host,tm=0,bogus=1,sse3=q,nokey,,aes=1".into());
        let problems = p.problems().unwrap();
        let texts: Vec<(&str, &str)> = problems.iter().map(|p| (p.text.as_str(), p.reason)).collect();
        assert_eq!(
            texts,
            [
                ("bogus=1", "unknown CPUID flag name"),
                ("sse3=q", "illegal CPUID value (must be: [0|1|x|k|s])"),
                ("nokey", "missing \"=\" in key=value"),
            ]
        );
        let p = CpuidPolicy::Libxl("tm=0".into());
        assert_eq!(p.problems().unwrap()[0].reason, "the first word must be \"host\"");
        assert_eq!(json(&p), serde_json::Value::Null, "nothing applied");
        assert_eq!(CpuidPolicy::Libxl(String::new()).problems().unwrap(), []);
    }

    #[test]
    fn the_xend_form_and_its_errors() {
        let ones = "1".repeat(32);
        let p = CpuidPolicy::Xend(vec![
            format!("0x80000001,0:eax={ones}"),
            "0x1:ecx=short".into(),
            "zz".into(),
            "0x3,:eax=x".into(),
            "0x5 eax".into(),
            "0x6:e".into(),
        ]);
        let reasons: Vec<(Option<usize>, &str)> = p.problems().unwrap().iter().map(|p| (p.index, p.reason)).collect();
        assert_eq!(
            reasons,
            [
                (Some(1), "policy string must be exactly 32 characters long"),
                (Some(2), "illegal leaf number"),
                (Some(3), "illegal subleaf number"),
                (Some(4), "missing colon"),
                (Some(5), "invalid register name (must be e[abcd]x)"),
            ]
        );
        let j = json(&p);
        assert_eq!((j["cpuid"][0]["leaf"].as_u64(), j["cpuid"][0]["subleaf"].as_u64()), (Some(0x8000_0001), Some(0)));
        assert_eq!(j["cpuid"][0]["eax"], ones.as_str());
        // libxl made entries for leaves 1 and 6 before their errors; xl keeps them too.
        assert_eq!((j["cpuid"][1]["leaf"].as_u64(), j["cpuid"][1].get("ecx")), (Some(1), None));
        assert_eq!(j["cpuid"][2]["leaf"], 6);
    }

    #[test]
    fn a_nul_byte_is_an_error() {
        let e = CpuidPolicy::Xend(vec!["0x1\0".into()]).problems().unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
    }
}
