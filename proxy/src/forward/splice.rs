//! One direction over `splice(2)`: socket → pipe → socket, the bytes never
//! copied to user space. Pitfalls handled: socket-to-pipe EAGAIN is
//! ambiguous (socket empty, or pipe full), so the pipe is refilled only
//! when empty; a larger pipe is asked for and the default kept when the
//! kernel refuses (EPERM past `pipe-user-pages-soft`); bytes already read
//! in user space are written before splicing starts (the caller's copy
//! loop has flushed its buffer); half-close is passed on.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::pipe::{PipeFlags, SpliceFlags, fcntl_setpipe_size, pipe_with, splice};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::activity::{Activity, Failed, half_close};

/// A pipe for one direction.
pub(super) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity: usize,
}

impl Pipe {
    /// A non-blocking pipe, 1 MiB if the kernel allows, else its default.
    /// `None` when no pipe can be had (out of descriptors): the caller copies.
    pub(super) fn new() -> Option<Pipe> {
        let (read, write) = pipe_with(PipeFlags::NONBLOCK | PipeFlags::CLOEXEC).ok()?;
        let capacity = fcntl_setpipe_size(&write, PIPE_SIZE).unwrap_or(DEFAULT_PIPE_SIZE);
        Some(Pipe {
            read,
            write,
            capacity,
        })
    }
}

/// Move bytes from `from` to `to` until `from` ends (then half-close `to`).
pub(super) async fn pump(
    from: &TcpStream,
    to: &TcpStream,
    pipe: &Pipe,
    count: &AtomicU64,
    activity: &Activity<'_>,
) -> Result<(), Failed> {
    let flags = SpliceFlags::NONBLOCK | SpliceFlags::MOVE;
    let mut in_pipe = 0usize;
    loop {
        if in_pipe == 0 {
            from.readable().await.map_err(|_| Failed::Reader)?;
            let filled = from.try_io(Interest::READABLE, || {
                splice(from.as_fd(), None, &pipe.write, None, pipe.capacity, flags)
                    .map_err(io::Error::from)
            });
            match filled {
                Ok(0) => {
                    half_close(to);
                    return Ok(());
                }
                Ok(n) => in_pipe = n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => return Err(Failed::Reader),
            }
        }
        to.writable().await.map_err(|_| Failed::Writer)?;
        let drained = to.try_io(Interest::WRITABLE, || {
            splice(&pipe.read, None, to.as_fd(), None, in_pipe, flags).map_err(io::Error::from)
        });
        match drained {
            Ok(n) => {
                in_pipe -= n.min(in_pipe);
                count.fetch_add(n as u64, Ordering::Relaxed);
                activity.touch();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Err(Failed::Writer),
        }
    }
}

const PIPE_SIZE: usize = 1024 * 1024;
const DEFAULT_PIPE_SIZE: usize = 64 * 1024;
