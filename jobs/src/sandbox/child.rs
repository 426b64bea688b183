//! The sandbox process: `waflow sandbox` reads requests on stdin and answers on stdout, one
//! at a time, each a 4-byte big-endian length and then JSON. Before the first request it caps
//! its own address space, so a template that allocates without bound makes this process fail
//! (an allocation error aborts it) and never the server; the server kills it when a request
//! takes too long. It is started by the server, never by hand.

use std::io::{self, BufReader, BufWriter, Read, Write};

use super::render::{self, Request, Response};

/// The address space a sandbox process may use: the program and its libraries, and a few
/// hundred megabytes for templates and their values.
pub const MEMORY_LIMIT: u64 = 384 << 20;
/// The largest request or answer, a context included.
pub const MAX_FRAME: usize = 64 << 20;

/// Serves requests until stdin closes. Call it before any other thread is started: the limit is
/// on the whole process.
pub fn serve() -> io::Result<()> {
    limit_memory(MEMORY_LIMIT)?;
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    while let Some(frame) = read_frame(&mut input)? {
        let response = match serde_json::from_slice::<Request>(&frame) {
            Ok(request) => render::execute(request),
            Err(e) => Response::Failed(format!("the sandbox cannot read the request: {e}")),
        };
        let bytes = serde_json::to_vec(&response).map_err(io::Error::other)?;
        write_frame(&mut output, &bytes)?;
        output.flush()?;
    }
    Ok(())
}

fn limit_memory(bytes: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    // SAFETY: setrlimit reads the struct we pass and changes only this process's limits.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One frame, or `None` at the end of the input.
pub fn read_frame(input: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut length = [0u8; 4];
    match input.read_exact(&mut length) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_FRAME {
        return Err(io::Error::other(format!("a frame of {length} bytes")));
    }
    let mut frame = vec![0; length];
    input.read_exact(&mut frame)?;
    Ok(Some(frame))
}

pub fn write_frame(output: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let length = u32::try_from(bytes.len())
        .ok()
        .filter(|n| *n as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::other(format!("a frame of {} bytes", bytes.len())))?;
    output.write_all(&length.to_be_bytes())?;
    output.write_all(bytes)
}
