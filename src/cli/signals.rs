//! SIGINT, SIGTERM and SIGHUP. They are blocked in every thread and taken by
//! one thread with `sigwait`, which stops the command cleanly: the process
//! group of a `--from-command` dump is terminated (so no dump is orphaned),
//! the repository locks are given up (so nothing more is written and nobody
//! waits for them), and snap exits with 128 + the signal number. A push
//! stopped this way records no snapshot; its partial packs are removed by
//! the next writer.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The process group of the running `--from-command` child, or 0.
static CHILD_GROUP: AtomicI32 = AtomicI32::new(0);

/// How long a dump gets to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(5);

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        for s in SIGNALS {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks the signals in this thread (and so in every thread started after)
/// and starts the thread that waits for them. Call before starting threads.
pub fn install() {
    let set = signal_set();
    // SAFETY: `set` is a valid, initialised signal set.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    std::thread::spawn(move || loop {
        let mut sig = 0;
        // SAFETY: `set` and `sig` are valid for the call.
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            stop(sig);
        }
    });
}

/// Held from before a child is started until its group is recorded, so a
/// signal in between still finds the group to terminate.
static SPAWNING: Mutex<()> = Mutex::new(());

/// Hold this while starting the child and calling [`set_child_group`].
pub fn spawning() -> MutexGuard<'static, ()> {
    SPAWNING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Unblocks the signals in `cmd`'s process before it runs the program: a
/// blocked mask is inherited across exec, and a dump that cannot receive
/// SIGTERM would only stop at SIGKILL.
pub fn unblock_in_child(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let set = signal_set();
    // SAFETY: between fork and exec only pthread_sigmask runs, which is
    // async-signal-safe, on a set computed before the fork.
    unsafe {
        cmd.pre_exec(move || {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// Says which process group to terminate on a signal (0: none).
pub fn set_child_group(pgid: i32) {
    CHILD_GROUP.store(pgid, Ordering::SeqCst);
}

fn name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "SIGHUP",
    }
}

/// What a command asks to be done on a signal before the process exits
/// (`snap mount` unmounts); it returns the line to print.
type OnStop = Box<dyn FnOnce() -> String + Send>;
static ON_STOP: Mutex<Option<OnStop>> = Mutex::new(None);

/// Runs `f` when a signal stops the process, in place of the push's
/// message; its result is printed.
pub fn on_stop(f: OnStop) {
    *ON_STOP.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
}

/// Set once a signal is being handled: the process is about to exit.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the signal thread is ending the process: the command's own
/// outcome (a dump that "failed" because it was terminated) must not be
/// reported, nor its exit code used.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

fn stop(sig: libc::c_int) -> ! {
    STOPPING.store(true, Ordering::SeqCst);
    let why = format!("snap was stopped by {}", name(sig));
    snap::repo::lock::release_held(&why);
    let group = {
        let _spawned = spawning();
        CHILD_GROUP.load(Ordering::SeqCst)
    };
    let hook = ON_STOP.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(hook) = hook {
        eprintln!("snap: {why}; {}", hook());
    } else if group > 0 {
        let gone = terminate_group(group);
        eprintln!(
            "snap: {why}; the command's process group {group} was {}; no snapshot was recorded",
            if gone {
                "terminated"
            } else {
                "sent SIGKILL but is still there"
            }
        );
    } else {
        eprintln!("snap: {why}; a push in progress records no snapshot, and its partial packs are removed by the next push");
    }
    // SAFETY: _exit ends the process without running atexit handlers, which
    // could tear down the index under the threads still using it.
    unsafe { libc::_exit(128 + sig) }
}

/// Sends SIGTERM to the group, then SIGKILL after [`GRACE`]; returns whether
/// every member is gone.
fn terminate_group(group: i32) -> bool {
    for (sig, wait) in [(libc::SIGTERM, GRACE), (libc::SIGKILL, GRACE)] {
        // SAFETY: kill with a negative pid signals a process group.
        unsafe { libc::kill(-group, sig) };
        let deadline = Instant::now() + wait;
        while group_alive(group) {
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !group_alive(group) {
            return true;
        }
    }
    false
}

/// Whether a process of the group is still running. Zombies do not count:
/// the dump's own zombie is reaped by the main thread, its children's by
/// whoever inherited them.
fn group_alive(group: i32) -> bool {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        // SAFETY: signal 0 only checks for existence.
        return unsafe { libc::kill(-group, 0) } == 0;
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .as_encoded_bytes()
                .iter()
                .all(u8::is_ascii_digit)
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            // After the command name in parentheses: state, ppid, pgrp.
            let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.len() > 2 && f[0] != "Z" && f[2] == group.to_string()
        })
}
