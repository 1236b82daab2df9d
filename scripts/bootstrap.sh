#!/usr/bin/env bash
# Make a fresh Debian machine ready to build and test EcrCompose.
#
# Safe to run again: each step skips what is already in place. Runs without a
# terminal (CI=true, no standard input) and needs root for apt-get. Prints one
# line per step and exits non-zero at the first step that fails.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# dotnet, cargo and the tool paths below need a home directory, which a bare
# CI environment may leave unset.
HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME

APT_PACKAGES=(
  docker.io        # dockerd 20.10, the engine stand-in
  docker-registry  # CNCF distribution 2.8, the registry stand-in
  skopeo
  docker-compose
  apache2-utils    # htpasswd for the registry stand-in
  openssl          # test CA for the registry over TLS
  xz-utils         # unpacks the offline crate archive
  gcc              # compiles the C ABI test
  valgrind
)
PWSH_VERSION="7.6.10"
PESTER_VERSION="5.7.1"
CARGO_OFFLINE_BEGIN="# >>> ecr-compose bootstrap: cargo offline >>>"
CARGO_OFFLINE_END="# <<< ecr-compose bootstrap: cargo offline <<<"

step() { printf 'bootstrap: %-16s %s\n' "$1" "$2"; }
fail() {
  printf 'bootstrap: %-16s FAILED: %s\n' "$1" "$2" >&2
  exit 1
}

install_apt_packages() {
  local missing=() package
  for package in "${APT_PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ]]; then
      missing+=("$package")
    fi
  done
  if ((${#missing[@]} == 0)); then
    step "apt packages" "all ${#APT_PACKAGES[@]} present"
    return
  fi
  if ((EUID != 0)); then
    fail "apt packages" "missing ${missing[*]}: run this script as root to install them"
  fi

  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null >/dev/null ||
    fail "apt packages" "apt-get update failed"
  apt-get install -y -qq "${missing[@]}" </dev/null >/dev/null ||
    fail "apt packages" "apt-get install ${missing[*]} failed"
  step "apt packages" "installed ${missing[*]}"
}

check_python() {
  command -v python3 >/dev/null || fail "python" "python3 not found on PATH"
  local versions
  versions="$(python3 -c 'import sys, boto3, moto; print(f"python {sys.version.split()[0]}, moto {moto.__version__}")' 2>/dev/null)" ||
    fail "python" "$(command -v python3) cannot import moto and boto3: install moto (with boto3) for this interpreter"
  step "python" "$versions"
}

install_pwsh() {
  command -v dotnet >/dev/null || fail "pwsh" "dotnet not found on PATH: install the .NET SDK first"
  local tool_dir="${HOME}/.dotnet/tools"
  local note="present"
  if ! command -v pwsh >/dev/null; then
    if [[ ! -x "$tool_dir/pwsh" ]]; then
      dotnet tool install --global PowerShell --version "$PWSH_VERSION" </dev/null >/dev/null ||
        fail "pwsh" "dotnet tool install --global PowerShell --version $PWSH_VERSION failed"
      note="installed"
    fi
    # A link in /usr/local/bin puts pwsh on the PATH of every later shell, CI included.
    ln -sf "$tool_dir/pwsh" /usr/local/bin/pwsh ||
      fail "pwsh" "cannot link $tool_dir/pwsh into /usr/local/bin"
    note="$note, linked into /usr/local/bin"
  fi
  local version
  version="$(pwsh -NoLogo -NoProfile -NonInteractive -Command '$PSVersionTable.PSVersion.ToString()' </dev/null)" ||
    fail "pwsh" "pwsh does not start"
  step "pwsh" "$version ($note)"
}

restore_pester() {
  local manifest="$repo/.tools/nuget/pester/$PESTER_VERSION/tools/Pester.psd1"
  if [[ -f "$manifest" ]]; then
    step "pester" "$PESTER_VERSION present"
    return
  fi
  dotnet restore "$repo/tests/tools/tools.csproj" --packages "$repo/.tools/nuget" </dev/null >/dev/null ||
    fail "pester" "dotnet restore tests/tools/tools.csproj failed"
  [[ -f "$manifest" ]] || fail "pester" "restore finished but $manifest is missing"
  step "pester" "$PESTER_VERSION restored into .tools/nuget"
}

activate_offline_crates() {
  local activate
  activate="$(dirname "$repo")/shared/offline-crates/activate"
  if [[ ! -f "$activate" ]]; then
    step "offline crates" "none next to the repository, cargo uses its registry"
    return
  fi
  bash "$activate" </dev/null >/dev/null || fail "offline crates" "$activate failed"
  export CARGO_NET_OFFLINE=true

  # Later processes (build.ps1, cargo run by hand) do not inherit this
  # script's environment, so the setting also goes into cargo's own config.
  local config="${CARGO_HOME:-$HOME/.cargo}/config.toml"
  if ! grep -qF "$CARGO_OFFLINE_BEGIN" "$config" 2>/dev/null; then
    if grep -Eq '^[[:space:]]*\[net\]' "$config" 2>/dev/null; then
      step "offline crates" "activated, but $config has its own [net] table: set CARGO_NET_OFFLINE=true yourself"
      return
    fi
    printf '\n%s\n[net]\noffline = true\n%s\n' "$CARGO_OFFLINE_BEGIN" "$CARGO_OFFLINE_END" >>"$config"
  fi
  step "offline crates" "activated, cargo offline (net.offline in $config)"
}

check_rust() {
  command -v cargo >/dev/null || fail "rust" "cargo not found on PATH: install a Rust toolchain (1.85 or later)"
  step "rust" "$(cargo --version)"
}

install_apt_packages
check_python
install_pwsh
restore_pester
activate_offline_crates
check_rust
step "done" "machine ready"
