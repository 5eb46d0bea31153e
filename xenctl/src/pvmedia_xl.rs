//! Reading xl.cfg's `vdispl` and `vsnd` lists the way xl 4.17 reads them
//! (parse_vdispl_config and parse_vsnd_item in tools/xl/xl_parse.c) into the types of
//! `pvmedia.rs`. What xl reads wrongly or crashes on (a connector without its id, an empty
//! `connectors=` or `sample-rates=`) and what it reads leniently (`sample-rates=abc` as 0,
//! `1920x1080x5`, `-5x10` wrapped to 4294967291) is refused here, saying why.

use crate::error::Result;
use crate::pvdevices_xl::c_unsigned;
use crate::pvmedia::{
    VdisplConnector, VdisplSpec, VsndParams, VsndPcm, VsndSpec, VsndStream, VsndStreamType, pcm_format,
};
use crate::spec::DomainSpec;
use crate::xlread::{OneOrLists, Reader};

/// Reads `vdispl` and `vsnd` into `spec`; xl reads both for every guest type.
pub(crate) fn read_media(r: &mut Reader, spec: &mut DomainSpec) -> Result<()> {
    for (i, item) in r.list_or_ignore("vdispl")?.unwrap_or_default().iter().enumerate() {
        spec.vdispls.push(vdispl_from_xl(item).map_err(|e| r.item_err("vdispl", i, format!("{item:?}: {e}")))?);
    }
    match r.lists("vsnd")? {
        None => {}
        Some(OneOrLists::One(_)) => log::warn!(
            "{}: vsnd: a single value where xl expects a list of cards [ [ ... ] ]; ignored, as xl ignores it",
            r.at("vsnd")
        ),
        Some(OneOrLists::Lists(cards)) => {
            for (i, card) in cards.iter().enumerate() {
                let vsnd = vsnd_from_xl(card).map_err(|(j, e)| {
                    r.item_err("vsnd", i, format!("item {j} {:?}: {e}", card.get(j).map_or("", String::as_str)))
                })?;
                spec.vsnds.push(vsnd);
            }
        }
    }
    Ok(())
}

/// A vdispl spec (`[backend=D,][be-alloc=B,]connectors=ID:WxH;ID:WxH...`).
pub(crate) fn vdispl_from_xl(spec: &str) -> std::result::Result<VdisplSpec, String> {
    let mut vdispl = VdisplSpec::new(Vec::new());
    for token in spec.split(',').filter(|t| !t.is_empty()).map(|t| t.trim_start_matches(' ')) {
        match token.split_once('=') {
            Some(("backend", v)) => vdispl.backend_domain = Some(v.to_string()),
            Some(("be-alloc", v)) => {
                vdispl.be_alloc = c_unsigned(v).ok_or_else(|| format!("be-alloc={v}: expected 0 or 1"))? != 0
            }
            Some(("connectors", v)) => vdispl.connectors = connectors_from_xl(v)?,
            _ => return Err(format!("unknown option `{token}'")),
        }
    }
    if vdispl.connectors.is_empty() {
        return Err("needs connectors=ID:WxH[;ID:WxH...], at least one".into());
    }
    Ok(vdispl)
}

fn connectors_from_xl(text: &str) -> std::result::Result<Vec<VdisplConnector>, String> {
    let list: Vec<&str> = text.split(';').filter(|c| !c.is_empty()).collect();
    if list.is_empty() {
        return Err("connectors= with no connector (xl crashes on it)".into());
    }
    list.into_iter()
        .map(|c| {
            let bad = || format!("connector `{c}': expected ID:WIDTHxHEIGHT, like hdmi0:1920x1080");
            let (id, size) = c.split_once(':').ok_or_else(bad)?;
            if id.is_empty() || id.contains(char::is_whitespace) {
                return Err(format!("connector `{c}': the id is empty or has a blank"));
            }
            let (w, h) = size.split_once('x').ok_or_else(bad)?;
            let number = |n: &str| n.parse::<u32>().ok().filter(|_| n.bytes().all(|b| b.is_ascii_digit()));
            match (number(w), number(h)) {
                (Some(width), Some(height)) => Ok(VdisplConnector::new(id, width, height)),
                _ => Err(bad()),
            }
        })
        .collect()
}

/// Which part of the card an item's options go to.
enum Level {
    Card,
    Pcm,
    Stream,
}

/// A card's items (`CARD, opts...`, `PCM, opts...`, `STREAM, opts...`); a STREAM belongs to
/// the PCM before it (a new one if there is none). The error carries the item's index.
pub(crate) fn vsnd_from_xl(items: &[String]) -> std::result::Result<VsndSpec, (usize, String)> {
    let mut card = VsndSpec::default();
    for (j, item) in items.iter().enumerate() {
        vsnd_item(&mut card, item).map_err(|e| (j, e))?;
    }
    Ok(card)
}

fn vsnd_item(card: &mut VsndSpec, item: &str) -> std::result::Result<(), String> {
    let mut tokens = item.split(',').filter(|t| !t.is_empty()).map(|t| t.trim_start_matches(' '));
    // An empty item names nothing and sets nothing, for xl too.
    let Some(key) = tokens.next() else { return Ok(()) };
    let level = match key.to_ascii_lowercase().as_str() {
        "card" => Level::Card,
        "pcm" => {
            card.pcms.push(VsndPcm::default());
            Level::Pcm
        }
        "stream" => {
            if card.pcms.is_empty() {
                card.pcms.push(VsndPcm::default());
            }
            if let Some(pcm) = card.pcms.last_mut() {
                pcm.streams.push(VsndStream::default());
            }
            Level::Stream
        }
        _ => return Err(format!("`{key}': expected CARD, PCM or STREAM first")),
    };
    for token in tokens {
        let (k, v) = token.split_once('=').ok_or_else(|| format!("`{token}' is not KEY=VALUE"))?;
        let unknown = || format!("unknown option `{k}' for {}", key.to_ascii_uppercase());
        match level {
            Level::Card => {
                if !param(&mut card.params, k, v)? {
                    match k {
                        "backend" => card.backend_domain = Some(v.to_string()),
                        "short-name" => card.short_name = Some(v.to_string()),
                        "long-name" => card.long_name = Some(v.to_string()),
                        _ => return Err(unknown()),
                    }
                }
            }
            Level::Pcm => {
                let Some(pcm) = card.pcms.last_mut() else { return Err(unknown()) };
                if !param(&mut pcm.params, k, v)? {
                    match k {
                        "name" => pcm.name = Some(v.to_string()),
                        _ => return Err(unknown()),
                    }
                }
            }
            Level::Stream => {
                let Some(stream) = card.pcms.last_mut().and_then(|p| p.streams.last_mut()) else {
                    return Err(unknown());
                };
                if !param(&mut stream.params, k, v)? {
                    match k {
                        "unique-id" => stream.unique_id = Some(v.to_string()),
                        // libxl's names P and C, in any case.
                        "type" => {
                            stream.stream_type = Some(match v.to_ascii_lowercase().as_str() {
                                "p" => VsndStreamType::Playback,
                                "c" => VsndStreamType::Capture,
                                _ => return Err(format!("type={v}: expected p (playback) or c (capture)")),
                            })
                        }
                        _ => return Err(unknown()),
                    }
                }
            }
        }
    }
    Ok(())
}

/// Sets a stream parameter common to all levels; `false` if `key` is not one.
fn param(p: &mut VsndParams, key: &str, value: &str) -> std::result::Result<bool, String> {
    let number = |v: &str| {
        let n = c_unsigned(v).ok_or_else(|| format!("{key}={value}: `{v}' is not a number"))?;
        u32::try_from(n).map_err(|_| format!("{key}={value}: more than {}", u32::MAX))
    };
    let list = || {
        let items: Vec<&str> = value.split(';').filter(|s| !s.is_empty()).collect();
        if items.is_empty() { Err(format!("{key}= with an empty list (xl crashes on it)")) } else { Ok(items) }
    };
    match key {
        "sample-rates" => p.sample_rates = list()?.into_iter().map(number).collect::<std::result::Result<_, _>>()?,
        "sample-formats" => {
            p.sample_formats = list()?
                .into_iter()
                .map(|f| {
                    let lower = f.to_ascii_lowercase();
                    match pcm_format(&lower) {
                        Ok(Some(_)) => Ok(lower),
                        _ => Err(format!("sample format `{f}': not one of libxl's (s16_le, u8, f32_le, mu_law, ...)")),
                    }
                })
                .collect::<std::result::Result<_, _>>()?
        }
        "channels-min" => p.channels_min = number(value)?,
        "channels-max" => p.channels_max = number(value)?,
        "buffer-size" => p.buffer_size = number(value)?,
        _ => return Ok(false),
    }
    Ok(true)
}
