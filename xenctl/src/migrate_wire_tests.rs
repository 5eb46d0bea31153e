//! Tests of xl's migration protocol (`migrate_wire`): byte-exact transcripts of each side
//! against a scripted peer, our sender against our receiver over a socketpair with libxl faked
//! (a fake stream body, calls recorded, failures injected), and the pieces (bounded reads,
//! reports, states).

use std::fs::File;
use std::os::unix::net::UnixStream;

use super::*;

/// Larger than a socket's buffers, so the two ends must really run side by side.
const BODY_LEN: usize = 300 * 1024;
const CONFIG: &str = r#"{"c_info":{"name":"web"}}"#;
// The messages as tools/xl/xl.h (4.17) defines them and xl_migrate.c's migrate_domain and
// migrate_receive send them: the banner without its NUL (sizeof - 1), the rest with it.
const XL_BANNER: &[u8; 54] = b"xl migration receiver ready, send binary domain data.\n";
const XL_READY: &[u8; 34] = b"domain received, ready to unpause\0";
const XL_GO: &[u8; 44] = b"domain is yours, you are cleared to unpause\0";
const XL_REPORT: &[u8; 39] = b"my copy unpause results are as follows\0";

fn body() -> Vec<u8> {
    (0..BODY_LEN).map(|i| (i % 251) as u8).collect()
}

fn header() -> Vec<u8> {
    SaveImageHeader::encode(CONFIG)
}

fn failure(op: &'static str) -> Error {
    Error::Libxl { op, subject: Subject::Host, code: LibxlErrorCode::ERROR_FAIL }
}

fn os(op: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Os { op, source }
}

/// Records its calls and fails the one named `fail`.
#[derive(Default)]
struct Calls {
    made: Vec<&'static str>,
    fail: Option<&'static str>,
}

impl Calls {
    fn failing(call: &'static str) -> Calls {
        Calls { made: vec![], fail: Some(call) }
    }
    fn call(&mut self, call: &'static str) -> Result<()> {
        self.made.push(call);
        if self.fail == Some(call) { Err(failure(call)) } else { Ok(()) }
    }
}

/// A source whose "libxl stream" is `body()`.
#[derive(Default)]
struct FakeSource(Calls);

impl SourceDomain for FakeSource {
    fn domid(&self) -> DomId {
        DomId::new(7)
    }
    fn send_stream(&mut self, to: BorrowedFd<'_>) -> Result<()> {
        self.0.call("stream")?;
        let mut out = File::from(to.try_clone_to_owned().map_err(os("dup"))?);
        out.write_all(&body()).map_err(os("write the stream"))
    }
    fn rename_away(&mut self) -> Result<()> {
        self.0.call("rename away")
    }
    fn rename_back(&mut self) -> Result<()> {
        self.0.call("rename back")
    }
    fn resume(&mut self) -> Result<()> {
        self.0.call("resume")
    }
}

/// A target that "restores" by reading exactly `BODY_LEN` bytes.
#[derive(Default)]
struct FakeTarget {
    calls: Calls,
    got: Vec<u8>,
    config: Option<String>,
}

impl FakeTarget {
    fn failing(call: &'static str) -> FakeTarget {
        FakeTarget { calls: Calls::failing(call), ..FakeTarget::default() }
    }
}

impl TargetDomain for FakeTarget {
    fn restore(&mut self, h: &SaveImageHeader, from: BorrowedFd<'_>, _: BorrowedFd<'_>) -> Result<DomId> {
        self.calls.call("restore")?;
        self.config = h.config_json.clone();
        let mut input = File::from(from.try_clone_to_owned().map_err(os("dup"))?);
        self.got = vec![0; BODY_LEN];
        input.read_exact(&mut self.got).map_err(os("read the stream"))?;
        Ok(DomId::new(9))
    }
    fn prepare(&mut self, _: DomId) -> Result<()> {
        self.calls.call("prepare")
    }
    fn start(&mut self, _: DomId) -> Result<()> {
        self.calls.call("start")
    }
    fn destroy(&mut self, _: DomId) -> Result<()> {
        self.calls.call("destroy")
    }
}

/// A connected socketpair whose reads and writes give up after a deadline, so a side that
/// waits for something that never comes fails its test instead of hanging it.
fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    for end in [&a, &b] {
        end.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        end.set_write_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    }
    (a, b)
}

/// Our sender against our receiver over a socketpair.
fn converse(source: &mut FakeSource, target: &mut FakeTarget) -> (SenderEnd, Result<Arrived>) {
    let (ours, theirs) = pair();
    std::thread::scope(|s| {
        let receiver = s.spawn(move || run_receiver(&mut theirs.try_clone().unwrap(), &mut &theirs, target));
        let end = run_sender(&mut ours.try_clone().unwrap(), &mut &ours, &header(), source);
        drop(ours); // a receiver still waiting hears the end
        (end, receiver.join().unwrap())
    })
}

/// What a scripted peer does, in order.
enum Act {
    Say(Vec<u8>),
    Hear(usize),
    ShutRead,
}

/// Runs `script` on one end of a socketpair while `ours` runs on the other; returns what
/// `ours` returned and every byte the peer heard, to the end of the stream.
fn against_script<T>(script: Vec<Act>, ours: impl FnOnce(UnixStream) -> T) -> (T, Vec<u8>) {
    let (mine, mut peer) = pair();
    std::thread::scope(|s| {
        let peer = s.spawn(move || {
            let mut heard = vec![];
            for act in script {
                match act {
                    Act::Say(bytes) => drop(peer.write_all(&bytes)),
                    Act::Hear(n) => drop((&mut peer).take(n as u64).read_to_end(&mut heard)),
                    Act::ShutRead => peer.shutdown(std::net::Shutdown::Read).unwrap(),
                }
            }
            heard
        });
        let result = ours(mine);
        (result, peer.join().unwrap())
    })
}

fn sender_against(script: Vec<Act>, source: &mut FakeSource) -> (SenderEnd, Vec<u8>) {
    against_script(script, |s| run_sender(&mut s.try_clone().unwrap(), &mut &s, &header(), source))
}

fn receiver_against(script: Vec<Act>, target: &mut FakeTarget) -> (Result<Arrived>, Vec<u8>) {
    against_script(script, |s| run_receiver(&mut s.try_clone().unwrap(), &mut &s, target))
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn the_sender_says_exactly_what_xl_says() {
    let script = vec![
        Act::Say(XL_BANNER.to_vec()),
        Act::Hear(header().len() + BODY_LEN),
        Act::Say(XL_READY.to_vec()),
        Act::Hear(XL_GO.len()),
        Act::Say(cat(&[XL_REPORT, &[0]])),
        Act::Hear(usize::MAX),
    ];
    let mut source = FakeSource::default();
    let (end, heard) = sender_against(script, &mut source);
    assert!(matches!(end, SenderEnd::Migrated), "{end:?}");
    assert_eq!(heard, cat(&[&header(), &body(), XL_GO]), "and nothing after");
}

#[test]
fn the_receiver_says_exactly_what_xl_says() {
    let script = vec![
        Act::Hear(XL_BANNER.len()),
        Act::Say(cat(&[&header(), &body()])),
        Act::Hear(XL_READY.len()),
        Act::Say(XL_GO.to_vec()),
        Act::Hear(usize::MAX),
    ];
    let mut target = FakeTarget::default();
    let (arrived, heard) = receiver_against(script, &mut target);
    let arrived = arrived.unwrap();
    assert_eq!((arrived.domid, arrived.config_json.as_str(), arrived.sender_told), (DomId::new(9), CONFIG, true));
    assert_eq!(heard, cat(&[XL_BANNER, XL_READY, XL_REPORT, &[0]]));
    assert_eq!(target.calls.made, ["restore", "prepare", "start"]);
}

#[test]
fn a_domain_migrates_between_our_two_ends() {
    let (mut source, mut target) = (FakeSource::default(), FakeTarget::default());
    let (end, arrived) = converse(&mut source, &mut target);
    assert!(matches!(end, SenderEnd::Migrated), "{end:?}");
    assert!(arrived.unwrap().sender_told);
    assert!(target.got == body(), "the target's libxl got the stream intact, and only it");
    assert_eq!(target.config.as_deref(), Some(CONFIG));
    assert_eq!(source.0.made, ["stream", "rename away"]);
    assert_eq!(target.calls.made, ["restore", "prepare", "start"]);
}

#[test]
fn a_target_that_cannot_start_it_hands_it_back() {
    let (mut source, mut target) = (FakeSource::default(), FakeTarget::failing("start"));
    let (end, arrived) = converse(&mut source, &mut target);
    let SenderEnd::Kept { error, resume: Ok(()) } = end else { panic!("{end:?}") };
    assert_eq!(error.to_string(), "start on the target of domain 7 failed: ERROR_FAIL (-3)");
    assert!(arrived.is_err());
    assert_eq!(source.0.made, ["stream", "rename away", "rename back", "resume"]);
    assert_eq!(target.calls.made, ["restore", "prepare", "start", "destroy"]);
}

/// The call failing on the source, the one on the target, then the calls each side made.
type FailureCase = (Option<&'static str>, Option<&'static str>, &'static [&'static str], &'static [&'static str]);

#[test]
fn failures_before_go_resume_the_source_and_leave_no_target_copy() {
    let cases: [FailureCase; 4] = [
        (Some("stream"), None, &["stream", "resume"], &["restore"]),
        (None, Some("restore"), &["stream", "resume"], &["restore"]),
        (None, Some("prepare"), &["stream", "resume"], &["restore", "prepare", "destroy"]),
        (Some("rename away"), None, &["stream", "rename away", "resume"], &["restore", "prepare", "destroy"]),
    ];
    for (on_source, on_target, source_calls, target_calls) in cases {
        let mut source = FakeSource(Calls { made: vec![], fail: on_source });
        let mut target = FakeTarget { calls: Calls { made: vec![], fail: on_target }, ..FakeTarget::default() };
        let (end, arrived) = converse(&mut source, &mut target);
        assert!(matches!(end, SenderEnd::Kept { resume: Ok(()), .. }), "{on_source:?}/{on_target:?}: {end:?}");
        assert!(arrived.is_err());
        assert_eq!(source.0.made, source_calls, "{on_source:?}/{on_target:?}");
        assert_eq!(target.calls.made, target_calls, "{on_source:?}/{on_target:?}");
    }
}

#[test]
fn a_stranger_instead_of_a_receiver_leaves_the_source_untouched() {
    let mut source = FakeSource::default();
    let (end, heard) = sender_against(vec![Act::Say(b"SSH-2.0-OpenSSH_9.2\r\n".to_vec())], &mut source);
    let SenderEnd::Kept { error, resume: Ok(()) } = end else { panic!("{end:?}") };
    let cause = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
    assert_eq!(cause, r#"unexpected data instead of the receiver's banner: "SSH-2.0-OpenSSH_9.2\r\n""#);
    assert!(source.0.made.is_empty() && heard.is_empty());
}

#[test]
fn after_go_a_silent_or_half_answering_receiver_leaves_the_sender_in_doubt() {
    let until_go = || {
        vec![
            Act::Say(XL_BANNER.to_vec()),
            Act::Hear(header().len() + BODY_LEN),
            Act::Say(XL_READY.to_vec()),
            Act::Hear(XL_GO.len()),
        ]
    };
    let mut failed_then_gone = until_go();
    failed_then_gone.push(Act::Say(cat(&[XL_REPORT, &[3]])));
    for (script, in_state) in [
        (until_go(), SenderState::AwaitReport),
        (failed_then_gone, SenderState::AwaitResumePermission(NonZeroU8::new(3).unwrap())),
    ] {
        let mut source = FakeSource::default();
        let (end, _) = sender_against(script, &mut source);
        assert!(matches!(end, SenderEnd::InDoubt { state, .. } if state == in_state), "{end:?}");
        assert_eq!(source.0.made, ["stream", "rename away"], "nothing touched after GO");
    }
}

#[test]
fn a_receiver_without_go_destroys_its_copy() {
    let script = vec![Act::Hear(XL_BANNER.len()), Act::Say(cat(&[&header(), &body()])), Act::Hear(XL_READY.len())];
    let mut target = FakeTarget::default();
    let (arrived, _) = receiver_against(script, &mut target);
    assert!(arrived.is_err());
    assert_eq!(target.calls.made, ["restore", "prepare", "destroy"]);
}

#[test]
fn a_receiver_refuses_a_bad_header_before_restoring() {
    let mut no_config = header()[..48].to_vec();
    no_config[44..48].copy_from_slice(&0u32.to_ne_bytes());
    for (bad, why) in [(b"GET / HTTP/1.1\r\n".repeat(4), "wrong magic"), (no_config, "carries no domain config")] {
        let mut target = FakeTarget::default();
        let (arrived, heard) = receiver_against(vec![Act::Hear(XL_BANNER.len()), Act::Say(bad)], &mut target);
        assert!(arrived.unwrap_err().to_string().contains(why));
        assert!(target.calls.made.is_empty());
        assert_eq!(heard, XL_BANNER);
    }
}

#[test]
fn a_receiver_whose_success_report_is_lost_keeps_its_running_copy() {
    let script = vec![
        Act::Hear(XL_BANNER.len()),
        Act::Say(cat(&[&header(), &body()])),
        Act::Hear(XL_READY.len()),
        Act::ShutRead,
        Act::Say(XL_GO.to_vec()),
    ];
    let mut target = FakeTarget::default();
    let (arrived, _) = receiver_against(script, &mut target);
    assert!(!arrived.unwrap().sender_told);
    assert_eq!(target.calls.made, ["restore", "prepare", "start"]);
}

#[test]
fn expect_takes_its_message_and_not_a_byte_more() {
    let mut r: &[u8] = b"domain received, ready to unpause\0STREAM";
    expect(&mut r, Message::Ready).unwrap();
    assert_eq!(r, b"STREAM");
    let mut short: &[u8] = b"domain rec";
    let err = expect(&mut short, Message::Ready).unwrap_err();
    assert_eq!(err.to_string(), "the stream ended after 10 of the 34 bytes of the receiver's ready message");
    let mut long: &[u8] = &[b'x'; 4096];
    let err = expect(&mut long, Message::Go).unwrap_err();
    assert_eq!(long.len(), 4096 - 44, "reads are bounded by the message");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn reports_carry_minus_libxls_code_and_failure_is_never_zero() {
    let mut out = vec![];
    send_report(&mut out, TargetReport::Failed(failure_status(&failure("unpause")))).unwrap();
    assert_eq!(out, cat(&[XL_REPORT, &[3]]));
    assert_eq!(read_report(&mut &out[..]).unwrap(), TargetReport::Failed(NonZeroU8::new(3).unwrap()));
    assert_eq!(read_report(&mut &cat(&[XL_REPORT, &[0]])[..]).unwrap(), TargetReport::Running);
    assert!(read_report(&mut XL_REPORT.as_slice()).is_err(), "no status byte");
    let odd = Error::Libxl { op: "x", subject: Subject::Host, code: LibxlErrorCode(-256) };
    assert_eq!(failure_status(&odd).get(), 1);
    assert_eq!(failure_status(&Error::Dom0Refused { op: "x" }).get(), 3, "not libxl's: ERROR_FAIL");
}

#[test]
fn states_refuse_events_out_of_turn() {
    assert_eq!(SenderState::AwaitBanner.next(Event::Reported(TargetReport::Running)), None);
    assert_eq!(SenderState::Migrated.next(Event::Done), None);
    assert_eq!(ReceiverState::Restoring.next(Event::Done), None);
    assert_eq!(ReceiverState::Running(DomId::new(1)).next(Event::Done), None);
    let d = DomId::new(4);
    assert_eq!(ReceiverState::Restoring.next(Event::Restored(d)), Some(ReceiverState::Preparing(d)));
    assert_eq!(ReceiverState::SendReady(d).on_failure(), TargetFate::Destroy(d));
    assert_eq!(ReceiverState::AwaitGo(d).on_failure(), TargetFate::ReportAndDestroy(d));
    assert_eq!(SenderState::SendGo.on_failure(), SourceFate::InDoubt, "xl: the point of no return");
}
