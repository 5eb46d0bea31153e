//! xl.cfg's list form of `viridian` (`viridian = [ "base", "!freq", "all", "defaults" ]`):
//! checking its items and turning them into libxl's enable/disable bitmaps exactly as
//! tools/xl/xl_parse.c does, item by item in order.

use crate::error::{Error, Result};
use crate::raw;

/// libxl's bitmaps for the list hold this many bits (xl allocates them this wide).
const WIDTH: u32 = xen_sys::LIBXL_BUILDINFO_HVM_VIRIDIAN_ENABLE_DISABLE_WIDTH;

/// One item of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    /// `all`: every enlightenment, named or not (xl's libxl_bitmap_set_any).
    All,
    /// `defaults`: the boolean `viridian` on, libxl's default set.
    Defaults,
    /// `NAME` (enable) or `!NAME` (disable): libxl's enlightenment number.
    One { bit: u32, enable: bool },
}

/// What libxl calls `name`, if it is an enlightenment.
fn enlightenment(name: &str) -> Option<u32> {
    let c = raw::c_string("viridian", name).ok()?;
    let mut e: xen_sys::libxl_viridian_enlightenment = 0;
    // SAFETY: c is a valid C string for the call and e a valid out pointer; the generated
    // from_string only compares strings and writes *e.
    let rc = unsafe { xen_sys::libxl_viridian_enlightenment_from_string(c.as_ptr(), &mut e) };
    (rc == 0 && e < WIDTH).then_some(e)
}

fn parse(item: &str) -> Option<Item> {
    match item {
        "all" => Some(Item::All),
        "defaults" => Some(Item::Defaults),
        _ => {
            let (name, enable) = match item.strip_prefix('!') {
                Some(name) => (name, false),
                None => (item, true),
            };
            enlightenment(name).map(|bit| Item::One { bit, enable })
        }
    }
}

/// Why xl refuses an item.
pub(crate) const UNKNOWN: &str =
    "not a viridian enlightenment (base, freq, time_ref_count, ..., `!NAME', all or defaults)";

/// The index of the first item xl would refuse ("unknown viridian enlightenment").
pub(crate) fn first_unknown(items: &[String]) -> Option<usize> {
    items.iter().position(|item| parse(item).is_none())
}

/// Checks every item, as xl does before it builds anything; `field` names the list.
pub(crate) fn validate(field: &str, items: &[String]) -> Result<()> {
    match first_unknown(items) {
        Some(i) => Err(Error::invalid(format!("{field}[{i}]"), items[i].as_str(), UNKNOWN)),
        None => Ok(()),
    }
}

/// Fills the HVM build info from a checked, non-empty list, as xl's parse_config_data does.
pub(crate) fn fill(
    hvm: &mut xen_sys::libxl_domain_build_info__bindgen_ty_1__bindgen_ty_1,
    items: &[String],
) -> Result<()> {
    let bytes = (WIDTH / 8) as usize;
    for map in [&mut hvm.viridian_enable, &mut hvm.viridian_disable] {
        map.map = raw::calloc_array::<u8>(bytes)?;
        map.size = WIDTH / 8;
    }
    for item in items {
        match parse(item) {
            Some(Item::All) => set_all(&mut hvm.viridian_enable),
            Some(Item::Defaults) => crate::devices::set_defbool(&mut hvm.viridian, Some(true)),
            Some(Item::One { bit, enable }) => {
                let (on, off) = if enable {
                    (&mut hvm.viridian_enable, &mut hvm.viridian_disable)
                } else {
                    (&mut hvm.viridian_disable, &mut hvm.viridian_enable)
                };
                set_bit(on, bit, true);
                set_bit(off, bit, false);
            }
            None => return Err(Error::invalid("platform.viridian_enlightenments", item.as_str(), "not checked")),
        }
    }
    Ok(())
}

fn set_all(map: &mut xen_sys::libxl_bitmap) {
    for bit in 0..map.size * 8 {
        set_bit(map, bit, true);
    }
}

fn set_bit(map: &mut xen_sys::libxl_bitmap, bit: u32, on: bool) {
    if bit >= map.size * 8 {
        return;
    }
    // SAFETY: map.map holds map.size bytes (allocated in fill), and bit / 8 < map.size.
    let byte = unsafe { &mut *map.map.add((bit / 8) as usize) };
    if on {
        *byte |= 1 << (bit % 8);
    } else {
        *byte &= !(1 << (bit % 8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_libxls_names_negations_all_and_defaults() {
        assert_eq!(parse("base"), Some(Item::One { bit: 0, enable: true }));
        assert_eq!(parse("!freq"), Some(Item::One { bit: 1, enable: false }));
        assert_eq!((parse("all"), parse("defaults")), (Some(Item::All), Some(Item::Defaults)));
        assert_eq!((parse("turbo"), parse("!"), parse("!all")), (None, None, None));
        // libxl compares names case-blind.
        assert_eq!(first_unknown(&["Base".into(), "turbo".into()]), Some(1));
        let e = validate("viridian", &["base".into(), "turbo".into()]).unwrap_err().to_string();
        assert!(e.starts_with("invalid viridian[1] \"turbo\": not a viridian enlightenment"), "{e}");
    }
}
