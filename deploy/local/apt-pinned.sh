# deploy/local/apt-pinned.sh — sourced by deploy/local/redis and deploy/local/prometheus.
#
# Why: the services the tests run against must be the same on every machine, like the
# Python packages in uv.lock. Debian decides what its mirrors still serve: a security
# archive drops a release once a newer one is out, so an exact pin alone would break
# every fresh machine the day Debian ships a fix. The rule here: install the pinned
# version when Debian serves it; otherwise a newer one of the same release line (a
# Debian update of the pinned upstream version), never an older one.
#
# apt_install_pinned PACKAGE VERSION LOG_FILE
#   needs say() and die() from the calling script.

apt_install_pinned() {
    local pkg="$1" want="$2" log="$3" sudo="" candidate
    command -v apt-get >/dev/null 2>&1 ||
        die "$pkg is not installed and apt-get is unavailable; install $pkg $want by hand"
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || die "$pkg missing and not root (no sudo) to apt-get install it"
        sudo="sudo"
    fi
    mkdir -p "$(dirname "$log")"
    export DEBIAN_FRONTEND=noninteractive
    # --no-install-recommends: nothing beyond the server and its tools; the package's own
    # service is never started by these scripts.
    local apt_opts=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    candidate="$(apt_candidate "$pkg")"
    # A fresh image may have no package lists yet, or old ones.
    if [[ -z "$candidate" ]] || ! apt_serves "$pkg" "$want"; then
        say "updating Debian's package lists"
        $sudo apt-get update -q >>"$log" 2>&1 || true
        candidate="$(apt_candidate "$pkg")"
    fi
    [[ -n "$candidate" ]] || die "Debian offers no $pkg package here (log: $log)"
    local version="$want"
    if ! apt_serves "$pkg" "$want"; then
        dpkg --compare-versions "$candidate" ge "$want" ||
            die "Debian serves $pkg $candidate, older than the pinned $want"
        [[ "${candidate%%-*}" == "${want%%-*}" ]] ||
            say "WARNING: pinned $pkg $want is gone; Debian now serves $candidate (another upstream version): update the pin in deploy/local and the README"
        say "pinned $pkg $want is no longer served; installing Debian's newer $candidate"
        version="$candidate"
    fi
    say "installing $pkg=$version from Debian's packages"
    $sudo apt-get install "${apt_opts[@]}" "$pkg=$version" >>"$log" 2>&1 || {
        tail -20 "$log" >&2
        die "apt-get install $pkg=$version failed (full log: $log)"
    }
}

apt_candidate() { apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | grep -v '(none)' || true; }

apt_serves() { apt-cache madison "$1" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}' | grep -qxF "$2"; }

# Warn when a package installed before (by hand, another project) is older than the pin.
apt_warn_if_older() {
    local pkg="$1" want="$2" have
    have="$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || true)"
    if [[ -n "$have" ]] && dpkg --compare-versions "$have" lt "$want"; then
        say "WARNING: $pkg $have is installed, older than the pinned $want (apt-get install $pkg=$want)"
    fi
}
