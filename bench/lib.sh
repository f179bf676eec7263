# shellcheck shell=bash
# Helpers for the bench scripts, which source it from the repository's
# root: . bench/lib.sh

# python3 runs the interpreter itself: the python3 a version manager puts
# first on the PATH may be a shim (pyenv's costs about 0.3 s a call), which
# the scripts' timed status polls would count.
PYTHON3=$(command python3 -c 'import sys; print(sys.executable)')
python3() { "$PYTHON3" "$@"; }

# freeport prints a free TCP port on loopback.
freeport() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# retry WHAT SECONDS INTERVAL CMD...: runs CMD every INTERVAL seconds until
# it succeeds; if it has not within SECONDS, says so, naming WHAT, and
# exits 1.
retry() {
    local what=$1 secs=$2 every=$3
    shift 3
    local deadline=$(($(date +%s%N) + secs * 1000000000))
    until "$@"; do
        if [ "$(date +%s%N)" -ge "$deadline" ]; then
            echo "$what: not within $secs s" >&2
            exit 1
        fi
        sleep "$every"
    done
}
