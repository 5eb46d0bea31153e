//! Tests of `vdispl` and `vsnd`: xl.cfg in (pvmedia_xl.rs), libxl's JSON out, and xl.cfg text
//! back (pvmedia.rs).

use super::*;
use crate::pvmedia_xl::{vdispl_from_xl, vsnd_from_xl};

use crate::pvdevices::tests::{parse, refusal};

fn json_of(spec: &DomainSpec, key: &str) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_str(&spec.to_libxl_json().unwrap()).unwrap();
    json[key].clone()
}

fn round_trip(spec: &DomainSpec) -> String {
    let text = spec.to_xl_config().unwrap_or_else(|e| panic!("{e}"));
    let back = DomainSpec::from_xl_config_text("out.cfg", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&back, spec, "{text}");
    text
}

#[test]
fn vdispls_give_xls_json() {
    let spec =
        parse("vdispl = [ 'backend=dom0,be-alloc=1,connectors=id0:1920x1080;id1:800x600', 'connectors=c:640x480' ]");
    // `xl -N create` of the same file on Xen 4.17.
    let xl = serde_json::json!([
        {"backend_domname": "dom0", "devid": 0, "be_alloc": true, "connectors": [
            {"unique_id": "id0", "width": 1920, "height": 1080}, {"unique_id": "id1", "width": 800, "height": 600}]},
        {"devid": 1, "connectors": [{"unique_id": "c", "width": 640, "height": 480}]}
    ]);
    assert_eq!(json_of(&spec, "vdispls"), xl);
    round_trip(&spec);
    // Empty connectors between semicolons are skipped; the last backend= and connectors= win.
    let v = vdispl_from_xl("be-alloc=0,connectors=a:1x1;;,connectors=b:2x2;,backend=x, backend=y").unwrap();
    assert_eq!(v, VdisplSpec::new(vec![VdisplConnector::new("b", 2, 2)]).backend("y"));
}

#[test]
fn bad_vdispls_are_refused() {
    for (item, want) in [
        ("backend=dom0", "needs connectors="),
        ("connectors=a:10x10,colour=1", "unknown option `colour=1'"),
        ("connectors=id0:1920", "expected ID:WIDTHxHEIGHT"),
        ("connectors=1920x1080", "expected ID:WIDTHxHEIGHT"),
        ("connectors=:10x10", "the id is empty"),
        ("connectors=", "no connector (xl crashes on it)"),
        ("connectors=a:-5x10", "expected ID:WIDTHxHEIGHT"),
        ("connectors=a:10x10x5", "expected ID:WIDTHxHEIGHT"),
        ("connectors=a:1x1,be-alloc=yes", "be-alloc=yes: expected 0 or 1"),
    ] {
        let e = vdispl_from_xl(item).unwrap_err();
        assert!(e.contains(want), "{item}: {e}");
    }
    let e = refusal("vdispl = [ 'connectors=a:1x1', 'backend=x' ]");
    assert!(e.starts_with("g.cfg:3: vdispl[1]: \"backend=x\": needs connectors="), "{e}");
}

#[test]
fn vsnds_give_xls_json() {
    let spec = parse(
        "vsnd = [\n\
         ['CARD, short-name=Main, long-name=Main card, backend=snd, sample-formats=s16_le;s8;u32_be, sample-rates=8000;44100, channels-min=1, channels-max=8, buffer-size=65536',\n\
         'PCM, name=Main, channels-max=4', 'STREAM, unique-id=0, type=p', 'STREAM, unique-id=1, type=C, channels-max=2',\n\
         'pcm, name=Second', 'stream, unique-id=2, type=p' ],\n\
         ['CARD, short-name=Second', 'STREAM, unique-id=9, type=p']\n]\n",
    );
    // `xl -N create` of the same file on Xen 4.17.
    let xl = serde_json::json!([
        {"backend_domname": "snd", "devid": 0, "short_name": "Main", "long_name": "Main card",
         "params": {"sample_rates": [8000, 44100], "sample_formats": ["s16_le", "s8", "u32_be"],
                    "channels_min": 1, "channels_max": 8, "buffer_size": 65536},
         "pcms": [
            {"name": "Main", "params": {"channels_max": 4}, "streams": [
                {"unique_id": "0", "type": "p", "params": {}},
                {"unique_id": "1", "type": "c", "params": {"channels_max": 2}}]},
            {"name": "Second", "params": {}, "streams": [{"unique_id": "2", "type": "p", "params": {}}]}]},
        {"devid": 1, "short_name": "Second", "params": {},
         "pcms": [{"params": {}, "streams": [{"unique_id": "9", "type": "p", "params": {}}]}]}
    ]);
    assert_eq!(json_of(&spec, "vsnds"), xl);
    round_trip(&spec);
}

#[test]
fn vsnd_items_build_the_card_in_order() {
    let items = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // An empty item sets nothing; a STREAM before any PCM makes one; case does not matter.
    let card = vsnd_from_xl(&items(&["", " card, sample-formats=S16_LE;;u8;", "STREAM,type=c,type=P", "Pcm"])).unwrap();
    assert_eq!(card.params.sample_formats, ["s16_le", "u8"]);
    assert_eq!(card.pcms.len(), 2);
    assert_eq!(card.pcms[0].streams[0].stream_type, Some(VsndStreamType::Playback));
    assert_eq!(card.pcms[1], VsndPcm::default());
    assert_eq!(vsnd_from_xl(&[]).unwrap(), VsndSpec::default());
    for (list, index, want) in [
        (&["CARD, sample-formats=float_le"][..], 0, "sample format `float_le'"),
        (&["CARD", "STREAM, unique-id=a, name=x"], 1, "unknown option `name' for STREAM"),
        (&["CARD", "PCM, name=a", "WHAT"], 2, "`WHAT': expected CARD, PCM or STREAM"),
        (&["CARD, short-name"], 0, "`short-name' is not KEY=VALUE"),
        (&["CARD, sample-rates=abc;44100"], 0, "`abc' is not a number"),
        (&["CARD, sample-rates=;"], 0, "an empty list (xl crashes on it)"),
        (&["STREAM, type=x"], 0, "type=x: expected p"),
        (&["PCM, buffer-size=4294967296"], 0, "more than 4294967295"),
    ] {
        let (i, e) = vsnd_from_xl(&items(list)).unwrap_err();
        assert!(i == index && e.contains(want), "{list:?}: {i} {e}");
    }
    let e = refusal("vsnd = [ [ 'CARD' ], 'CARD' ]");
    assert!(e.starts_with("g.cfg:3: vsnd[1]: a string, where xl expects a list"), "{e}");
    let e = refusal("vsnd = [ [ 'CARD', 'PCM, colour=red' ] ]");
    assert!(e.starts_with("g.cfg:3: vsnd[0]: item 1 \"PCM, colour=red\": unknown option `colour' for PCM"), "{e}");
    let e = refusal("vsnd = [ [ 'CARD', [ 'PCM' ] ] ]");
    assert!(e.contains("vsnd[0]: a list nested in a list"), "{e}");
    assert!(parse("vsnd = 'CARD'").vsnds.is_empty(), "ignored with a warning, as xl does");
    assert_eq!(parse("vsnd = [ [ ], [ '' ] ]").vsnds, [VsndSpec::default(), VsndSpec::default()]);
}

#[test]
fn every_media_field_round_trips() {
    let params = VsndParams {
        sample_rates: vec![8000, 48000],
        sample_formats: vec!["s16_le".into(), "f32_be".into(), "mu_law".into()],
        channels_min: 1,
        channels_max: 2,
        buffer_size: 4096,
    };
    let card = VsndSpec {
        backend_domain: Some("snd=dom".into()),
        long_name: Some("The main card".into()),
        params: params.clone(),
        pcms: vec![
            VsndPcm {
                name: Some("out".into()),
                params: params.clone(),
                streams: vec![
                    VsndStream { unique_id: Some("0".into()), stream_type: Some(VsndStreamType::Playback), params },
                    VsndStream { stream_type: Some(VsndStreamType::Capture), ..VsndStream::default() },
                    VsndStream::default(),
                ],
            },
            VsndPcm::default(),
        ],
        ..VsndSpec::new("Main")
    };
    let display = VdisplSpec {
        be_alloc: true,
        ..VdisplSpec::new(vec![VdisplConnector::new("a", 1, 2), VdisplConnector::new("b", 0, 0)]).backend("gpu")
    };
    let spec = DomainSpec::pv("m").kernel("/k").vdispl(display).vsnd(card).vsnd(VsndSpec::default());
    let text = round_trip(&spec);
    assert!(text.contains("vsnd = [ [ \"CARD,backend=snd=dom,short-name=Main,long-name=The main card,"), "{text}");
    let json = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<DomainSpec>(&json).unwrap(), spec);
}

#[test]
fn media_specs_are_validated() {
    let base = || DomainSpec::pv("m").kernel("/k");
    let err = |spec: DomainSpec| spec.validate().unwrap_err().to_string();
    assert!(err(base().vdispl(VdisplSpec::new(vec![]))).starts_with("invalid vdispls[0].connectors"));
    let e = err(base().vdispl(VdisplSpec::new(vec![VdisplConnector::new("a:b", 1, 1)])));
    assert!(e.starts_with("invalid vdispls[0].connectors[0].unique_id \"a:b\""), "{e}");
    let mut card = VsndSpec::new("c");
    card.params.sample_formats = vec!["S16_LE".into()];
    let e = err(base().vsnd(card.clone()));
    assert!(e.starts_with("invalid vsnds[0].params.sample_formats[0] \"S16_LE\""), "{e}");
    card.params.sample_formats = vec!["s16_le".into()];
    assert!(base().vsnd(card).validate().is_ok());
    let comma = VsndSpec::new("a,b");
    let e = base().vsnd(comma).to_xl_config().unwrap_err().to_string();
    assert!(e.starts_with("invalid vsnds[0].short_name"), "{e}");
}
