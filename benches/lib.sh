# Shared by the bench scripts (sourced): waiting for a local port to listen.

# Waits up to 10 s for something to listen on 127.0.0.1:$1.
wait_http() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}
