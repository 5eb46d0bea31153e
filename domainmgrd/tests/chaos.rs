//! Chaos: the daemon killed (as `kill -9` would) at random points of random lifecycles, then
//! restarted, must keep its promise (README, "Restart safety"): a restart stops no domain,
//! adopts every running domain it manages untouched, ends a create cut short with exactly one
//! running domain, leaves a guest whose save was cut short running, and publishes only true
//! statuses.
//!
//! Each run, drawn from its seed (`scenario.rs`): a fresh simulator and daemon; EVE domains
//! (Activate true or false), autostart domains (xl.cfg, started by host-start) and transient
//! ones (`domainctl create` of an xl.cfg or EVE JSON file); then a random walk of steps:
//! EVE config writes, deactivations, deletes and republishes (the same bytes, renamed over
//! the file, or brought back after a gap as zedmanager does), autostart files made unreadable
//! and fixed, operators' start/stop/destroy/restart/save/restore/create, host-start and
//! host-stop (with `SAVE` set or not), and create faults (a boot retried). The daemon is
//! killed at its Nth call of a lifecycle op counted from a chosen step, at the call's entry,
//! return, or (a save) middle (`SimHypervisor::kill_client_at`), or after a random delay, or
//! as a chosen step begins (in a republish's gap, while the file is away); then started again
//! on a hypervisor that records its calls (a config away for a republish comes back at once),
//! and left to settle (waiting on conditions: no status in a transition, every status true,
//! the removal grace over and a round trip through the supervisor after it; at most 10 s).
//!
//! The oracle (`oracle.rs`) keeps, per domain, only what the scenario asked up to the kill:
//! a domain may be stopped when its EVE config says Activate=false or is gone (not when it is
//! away for a republish), when an operator stopped, destroyed, saved or restarted it and did
//! not start or restore it since, when host-stop was asked and host-start not since, or when
//! a request about it (host-start and host-stop concern all) was unanswered at the kill,
//! except a save or a `domainctl create`. The invariants:
//! 1. duplicate: no two simulator domains share a UUID, at the kill or at any time after;
//! 2. lost: a domain that ran at the kill and may not be stopped runs after the restart with
//!    the same domid (one whose save was in flight too); one whose create was in flight
//!    (created paused, never unpaused) ends as exactly one running domain, created again at
//!    most once; one a save had suspended (cut short in its middle, host-stop's too) is
//!    resumed, same domid; an operator's save the hypervisor had finished leaves its image
//!    and the image's record (else nothing can restore the guest);
//! 3. stopped unasked: the restarted daemon's shutdown, power-button, destroy and save calls
//!    concern only domains that may be stopped, half-created ones, ones already shutting down
//!    at the kill (not suspended by a save), or ones it made itself;
//! 4. untrue status: every status file agrees with the simulator (RUNNING: that domid runs,
//!    with our UUID; DomainId 0 iff no domain has the UUID; HALTED/INSTALLED: none has it;
//!    no status stuck in BOOTING/HALTING), and every running domain of ours has a status;
//! 5. partial image: a save cut short leaves no `<image>.partial` behind;
//!
//! and no domain thread panicked (UNKNOWN, "internal error").
//!
//! Fidelity: `Env::kill` cuts the daemon's simulator client off (its calls never return, its
//! watches hear nothing) and abandons it; its threads that are not in a call run on to their
//! next call or to the stop the abandoned supervisor sends them, and the run waits for that
//! before looking. A thread of the old daemon may still be going when its successor runs
//! (a slow thread, or its supervisor parked in a call so that its domain threads never hear
//! the stop, and one acts on a request or a timer): a real SIGKILL leaves no such thread, so
//! such a run (seen as a call of the killed client parked after the restart) is made again,
//! twice at most, and reported if it stays disturbed.
//!
//! `CHAOS_RUNS` (default 20, what CI runs; 200 for the full run), seeds `CHAOS_FIRST_SEED`
//! (default 1) onwards, `CHAOS_JOBS` runs at once (default 2); `CHAOS_SEED=N` replays run N
//! alone and prints what happened. The table goes to stderr; the test fails with each
//! violation and its seed. A seed replays the scenario, not the daemon's timing: a race may
//! need a few replays.

mod chaos_support;
mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use chaos_support::oracle::Invariant;
use chaos_support::run::{Outcome, run};
use chaos_support::scenario::Scenario;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn killing_the_daemon_anywhere_keeps_every_domain_and_every_status_true() {
    // Quiet unless RUST_LOG says otherwise: the runs fail boots on purpose.
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("off")).is_test(true).try_init();
    let replay = std::env::var("CHAOS_SEED").ok().and_then(|v| v.parse::<u64>().ok());
    let seeds: Vec<u64> = match replay {
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("CHAOS_FIRST_SEED", 1);
            (first..first + env_u64("CHAOS_RUNS", 20)).collect()
        }
    };
    let jobs = env_u64("CHAOS_JOBS", 2).max(1);
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let mut outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    while let Some(&seed) = seeds.get(next.fetch_add(1, Ordering::SeqCst) as usize) {
                        done.push(run_undisturbed(seed));
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    outcomes.sort_by_key(|o| o.seed);
    let seconds = started.elapsed().as_secs_f64();

    let mut err = std::io::stderr().lock();
    if replay.is_some() {
        for o in &outcomes {
            let _ = write!(err, "{}", Scenario::generate(o.seed));
            for line in &o.trace {
                let _ = writeln!(err, "  {line}");
            }
        }
    }
    let _ = writeln!(err, "{}", table(&outcomes, seconds));
    let failures: Vec<String> = outcomes
        .iter()
        .flat_map(|o| {
            let zombie = if o.zombie { " (the old daemon acted after the restart)" } else { "" };
            o.violations.iter().map(move |v| {
                format!("seed {} [kill: {}]{zombie}: {}: {}", o.seed, o.kill_point, v.invariant.name(), v.text)
            })
        })
        .collect();
    assert!(failures.is_empty(), "{} violation(s):\n{}", failures.len(), failures.join("\n"));
}

/// Runs `seed`, again (twice at most) if the old daemon acted after the restart: what such a
/// run finds may be its doing.
fn run_undisturbed(seed: u64) -> Outcome {
    let scenario = Scenario::generate(seed);
    let mut outcome = run(&scenario);
    for _ in 0..2 {
        if !outcome.zombie {
            break;
        }
        let retries = outcome.retries + 1;
        outcome = run(&scenario);
        outcome.retries = retries;
    }
    outcome
}

/// Runs, kills, kill points, violations by invariant, time.
fn table(outcomes: &[Outcome], seconds: f64) -> String {
    let mut points: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut kinds: BTreeMap<Invariant, usize> = BTreeMap::new();
    for o in outcomes {
        points.entry(o.kill_point.as_str()).or_default().push(o.seed);
        for v in &o.violations {
            *kinds.entry(v.invariant).or_default() += 1;
        }
    }
    let failed = outcomes.iter().filter(|o| !o.violations.is_empty()).count();
    let zombies = outcomes.iter().filter(|o| o.zombie).count();
    let retried: Vec<String> = outcomes.iter().filter(|o| o.retries > 0).map(|o| o.seed.to_string()).collect();
    let kills = outcomes.len() + outcomes.iter().map(|o| o.retries as usize).sum::<usize>();
    let mut t =
        format!("chaos: {} runs, {kills} kills, {failed} runs with violations, {seconds:.1} s\n", outcomes.len());
    if !retried.is_empty() {
        t += &format!("  run again because the old daemon acted after the restart: seeds {}\n", retried.join(", "));
    }
    t += "  kill points:\n";
    for (point, seeds) in &points {
        // The rare ones with their seeds, to replay.
        let which = if seeds.len() <= 5 {
            let seeds: Vec<String> = seeds.iter().map(|s| s.to_string()).collect();
            format!("  (seeds {})", seeds.join(", "))
        } else {
            String::new()
        };
        t += &format!("    {point:<20} {:>4}{which}\n", seeds.len());
    }
    if zombies > 0 {
        let seeds: Vec<String> = outcomes.iter().filter(|o| o.zombie).map(|o| o.seed.to_string()).collect();
        t += &format!(
            "  the old daemon still acted after the restart, every time, in the runs of seeds {}\n",
            seeds.join(", ")
        );
    }
    t += "  violations:\n";
    for kind in Invariant::ALL {
        t += &format!("    {:<20} {:>4}\n", kind.name(), kinds.get(&kind).copied().unwrap_or(0));
    }
    t
}
