//! What parsing an xl.cfg file in the helper process costs: spawn, limits, parse, JSON back
//! (`XlParser::parse`), against the same parse in-process (`parse_xl_config`), and how long a
//! hostile file holds a parse up.
//!
//! `cargo bench -p domainmgrd --bench xlparse [-- RUNS]` (default 100) prints medians.

// A benchmark that cannot set itself up should stop with a message; that is what expect does here.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use domainmgrd::configfile::{XlParser, parse_xl_config};

const PV_KERNEL: &str = include_str!("../../tests/xlcfg/pv-kernel.cfg");
const HVM_WINDOWS: &str = include_str!("../../tests/xlcfg/hvm-windows.cfg");

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100);
    let parser = XlParser::new(env!("CARGO_BIN_EXE_domainmgrd-xlparse"));
    println!("| file | in-process (median of {runs}) | in the helper (median of {runs}) |");
    println!("|---|---|---|");
    for (name, text) in [("pv-kernel.cfg", PV_KERNEL), ("hvm-windows.cfg", HVM_WINDOWS)] {
        let here = median(runs, || {
            parse_xl_config(name, text.as_bytes()).expect("parses");
        });
        let child = median(runs, || {
            parser.parse(name, text.as_bytes()).expect("parses");
        });
        println!("| {name} ({} bytes) | {here:.2?} | {child:.2?} |", text.len());
    }
    let bomb = format!("name = 'g'\nkernel = '/k'\n{}", "k += [\"a\"]\n".repeat(20_000));
    let runs = runs.min(10);
    let stopped = median(runs, || {
        parser.parse("bomb.cfg", bomb.as_bytes()).expect_err("stopped");
    });
    println!("| a += list bomb ({} bytes), stopped by the memory limit | - | {stopped:.2?} |", bomb.len());
}
