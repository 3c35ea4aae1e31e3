//! Media first: the threads that serve HTTP, WebSockets and chat run at a lower scheduling
//! priority than the media engine's thread, so when the machine is busy (a chat flood to
//! thousands of members, a burst of signaling) the kernel gives the core to forwarding
//! first. Lowering one's own priority needs no privilege.

/// How much nicer than the media thread the other server threads are.
const NICENESS: i32 = 5;

/// Lower the calling thread's priority (Linux: per-thread nice value). Best effort.
pub fn deprioritize_current_thread() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` has no preconditions; `setpriority` on our own thread id only
        // changes this thread's nice value and reports failure through its return value.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            let current = libc::getpriority(libc::PRIO_PROCESS, tid);
            let _ = libc::setpriority(libc::PRIO_PROCESS, tid, current + NICENESS);
        }
    }
}
