//! The listener handoff (`[admin] handoff`, `passthru run --takeover`): the
//! running process passes its listening sockets to a new one over a Unix
//! socket (`SCM_RIGHTS`), waits for it to accept on them, then stops
//! accepting and drains. The messages are in [`message`]; this module does
//! the socket I/O on both sides.
//!
//! Nothing the running process does before the new one says `switch`
//! changes it: it passes duplicates of its descriptors and keeps accepting.

pub mod message;

use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::inherited::Inherited;
use message::{Kind, MAX_MESSAGE, MAX_SOCKETS, Offer, STOPPED, SWITCH};

/// How long either side waits for the other at each step.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a takeover failed before the switch (the running process is
/// unchanged).
#[derive(Debug, thiserror::Error)]
#[error("cannot take over from {path}: {reason}")]
pub struct TakeoverError {
    /// The handoff socket.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// The new process's side, between receiving the sockets and the switch.
#[derive(Debug)]
pub struct Takeover {
    stream: StdUnixStream,
    path: PathBuf,
}

impl Takeover {
    /// Connect to the running passthru at `path` and receive its listening
    /// sockets. Blocking; bounded by a timeout per step.
    pub fn connect(path: &Path) -> Result<(Takeover, Inherited), TakeoverError> {
        let fail = |reason: String| TakeoverError {
            path: path.to_path_buf(),
            reason,
        };
        let stream = StdUnixStream::connect(path).map_err(|e| {
            fail(match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
                    format!("no running passthru listens there ({e})")
                }
                _ => e.to_string(),
            })
        })?;
        // Both ways: sockets are taken only from a process of our own user.
        let own = rustix::process::getuid();
        let peer = rustix::net::sockopt::socket_peercred(&stream)
            .map_err(|e| fail(format!("cannot read the peer's credentials: {e}")))?;
        if peer.uid != own {
            return Err(fail(format!(
                "the process there runs as user id {}, not {}",
                peer.uid.as_raw(),
                own.as_raw()
            )));
        }
        stream
            .set_read_timeout(Some(STEP_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(STEP_TIMEOUT)))
            .map_err(|e| fail(e.to_string()))?;
        let (bytes, fds) =
            receive(&stream).map_err(|e| fail(format!("receiving the offer: {e}")))?;
        let offer = message::decode(&bytes).map_err(|e| fail(format!("bad offer: {e}")))?;
        let sockets = match offer {
            Offer::Refused(reason) => return Err(fail(format!("refused: {reason}"))),
            Offer::Sockets(sockets) => sockets,
        };
        if sockets.len() != fds.len() {
            return Err(fail(format!(
                "the offer names {} sockets but carries {} descriptors",
                sockets.len(),
                fds.len()
            )));
        }
        let inherited = Inherited::from_handoff(sockets.into_iter().zip(fds).collect())
            .map_err(|e| fail(format!("a passed descriptor: {e}")))?;
        Ok((
            Takeover {
                stream,
                path: path.to_path_buf(),
            },
            inherited,
        ))
    }

    /// Tell the running process to stop accepting (we accept now), and wait
    /// until it has.
    pub async fn switch(self) -> io::Result<()> {
        let path = self.path;
        let mut stream = self.stream;
        tokio::task::spawn_blocking(move || {
            stream.write_all(SWITCH)?;
            let mut answer = [0u8; STOPPED.len()];
            stream.read_exact(&mut answer)?;
            if answer != STOPPED {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected answer from {}", path.display()),
                ));
            }
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// The running process's side: the Unix socket it listens on.
#[derive(Debug)]
pub struct HandoffServer {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file's inode, to remove it at exit only if it is still ours.
    ino: u64,
}

/// What a handoff passes, and how it tells the server.
#[derive(Debug)]
pub(crate) struct Handover {
    /// Duplicates of the listening sockets, with what they serve and their `bind`.
    pub(crate) sockets: Vec<(Kind, SocketAddr, OwnedFd)>,
    /// Cancelled once a new process said `switch`: stop accepting.
    pub(crate) switched: CancellationToken,
    /// Cancelled by the server once it no longer accepts.
    pub(crate) stopped: CancellationToken,
    /// Cancelled when the server shuts down.
    pub(crate) shutdown: CancellationToken,
}

impl HandoffServer {
    /// Listen on `path`, mode 0600, replacing a stale socket file (one
    /// nobody listens on any more).
    pub fn bind(path: &Path) -> io::Result<HandoffServer> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
                if StdUnixStream::connect(path).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        "a running passthru listens there (take it over with --takeover)",
                    ));
                }
                std::fs::remove_file(path)?;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is in the way",
                ));
            }
            Err(_) => {}
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let ino = std::fs::metadata(path)?.ino();
        Ok(HandoffServer {
            listener,
            path: path.to_path_buf(),
            ino,
        })
    }

    /// Serve takeovers until one switches or the server shuts down.
    pub(crate) async fn serve(self, handover: Handover) {
        let HandoffServer {
            listener,
            path,
            ino,
        } = self;
        let sockets = Arc::new(handover.sockets);
        info!(path = %path.display(), "handoff socket listening");
        let switched = loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = handover.shutdown.cancelled() => break false,
            };
            let Ok((stream, _)) = accepted else { continue };
            let own = rustix::process::getuid().as_raw();
            match stream.peer_cred() {
                Ok(cred) if cred.uid() == own => {}
                Ok(cred) => {
                    let uid = cred.uid();
                    warn!(uid, "handoff: refused a peer with another user id");
                    let reason = format!("user id {uid} is not the server's ({own})");
                    let _ = refuse(stream, Offer::Refused(reason)).await;
                    continue;
                }
                Err(error) => {
                    warn!(%error, "handoff: cannot read the peer's credentials; refused");
                    continue;
                }
            }
            let answer = tokio::select! {
                answer = offer_and_wait(stream, Arc::clone(&sockets)) => answer,
                () = handover.shutdown.cancelled() => break false,
            };
            match answer {
                Ok(stream) => {
                    info!(
                        "handoff: the new process accepts; stopping accepting and draining (/healthz unchanged)"
                    );
                    handover.switched.cancel();
                    // Closed before the answer, so the new process can
                    // listen on the path as soon as it has it.
                    drop(listener);
                    handover.stopped.cancelled().await;
                    let _ = tokio::task::spawn_blocking(move || {
                        let mut stream = stream;
                        stream.write_all(STOPPED)
                    })
                    .await;
                    break true;
                }
                Err(error) => {
                    warn!(%error, "handoff: the new process did not take over; still serving");
                }
            }
        };
        // After a switch the path may already be the new process's socket.
        if !switched && std::fs::metadata(&path).is_ok_and(|m| m.ino() == ino) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Send the offer and wait for `switch`; the stream back for the answer.
async fn offer_and_wait(
    stream: tokio::net::UnixStream,
    sockets: Arc<Vec<(Kind, SocketAddr, OwnedFd)>>,
) -> io::Result<StdUnixStream> {
    let stream = blocking(stream)?;
    tokio::task::spawn_blocking(move || {
        let offer = Offer::Sockets(sockets.iter().map(|(k, a, _)| (*k, *a)).collect());
        let fds: Vec<_> = sockets.iter().map(|(_, _, fd)| fd.as_fd()).collect();
        send(&stream, &message::encode(&offer), &fds)?;
        let mut word = [0u8; SWITCH.len()];
        (&stream).read_exact(&mut word)?;
        if word != SWITCH {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "expected \"switch\"",
            ));
        }
        Ok(stream)
    })
    .await
    .map_err(io::Error::other)?
}

/// Send a refusal (no descriptors).
async fn refuse(stream: tokio::net::UnixStream, offer: Offer) -> io::Result<()> {
    let stream = blocking(stream)?;
    tokio::task::spawn_blocking(move || send(&stream, &message::encode(&offer), &[]))
        .await
        .map_err(io::Error::other)?
}

fn blocking(stream: tokio::net::UnixStream) -> io::Result<StdUnixStream> {
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    stream.set_write_timeout(Some(STEP_TIMEOUT))?;
    Ok(stream)
}

/// One message, with `fds` as `SCM_RIGHTS`.
fn send(
    stream: &StdUnixStream,
    bytes: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> io::Result<()> {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many sockets to pass",
        ));
    }
    let sent = rustix::net::sendmsg(
        stream,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if sent != bytes.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the offer was cut short",
        ));
    }
    Ok(())
}

/// One message and the descriptors that came with it (at most
/// [`MAX_MESSAGE`] bytes and [`MAX_SOCKETS`] descriptors).
fn receive(stream: &StdUnixStream) -> io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut bytes = vec![0u8; MAX_MESSAGE];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut bytes)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if got.flags.contains(rustix::net::ReturnFlags::CTRUNC)
        || got.flags.contains(rustix::net::ReturnFlags::TRUNC)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the offer is too large",
        ));
    }
    if got.bytes == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the running process closed the connection",
        ));
    }
    bytes.truncate(got.bytes);
    Ok((bytes, fds))
}
