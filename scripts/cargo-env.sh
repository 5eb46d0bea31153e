# cargo-env.sh - sourced by the other scripts: puts the rustup toolchain that setup.sh installs
# ($CARGO_HOME/bin, default ~/.cargo/bin) ahead of any other cargo on PATH (Debian 12's own cargo,
# 1.63, is too old for this workspace), so `setup.sh && test.sh` works in one shell.
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
if [ -x "$cargo_bin/cargo" ]; then
  case ":$PATH:" in
    *":$cargo_bin:"*) ;;
    *) PATH="$cargo_bin:$PATH" ;;
  esac
  export PATH
fi
unset cargo_bin
