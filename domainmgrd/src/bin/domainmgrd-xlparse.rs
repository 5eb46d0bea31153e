//! domainmgrd-xlparse: parses one xl.cfg file for domainmgrd and domainctl, in a process of its
//! own, so that libxlutil aborting or exhausting memory on a hostile file ends this process
//! and not the daemon. It limits its own memory and CPU time first, reads the file's bytes on
//! stdin and writes the result as JSON on stdout: `domainmgrd-xlparse SOURCE < FILE`, where
//! SOURCE names the file in errors. The daemon runs it; people need not.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    domainmgrd::configfile::helper_main()
}
