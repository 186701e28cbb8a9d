//! The layout check of every frontend message of the query protocols.

use crate::wire::messages::read::{count, malformed, read_i32, skip_cstr};
use crate::wire::{Frame, WireError};

/// Checks that a frontend message of the extended or simple query
/// protocol is laid out exactly as the protocol says (no missing or
/// trailing bytes, no negative counts), as PostgreSQL checks it on
/// receipt. A guarded session refuses a malformed message itself: passed
/// on, it would draw an error the server sends where no answer is due.
/// Other message types are not checked here.
pub fn check_frontend(frame: &Frame) -> Result<(), WireError> {
    let body = frame.body();
    let what = match frame.tag() {
        b'Q' => "Query",
        b'P' => "Parse",
        b'B' => "Bind",
        b'E' => "Execute",
        b'D' => "Describe",
        b'C' => "Close",
        b'S' => "Sync",
        b'H' => "Flush",
        b'c' => "CopyDone",
        b'f' => "CopyFail",
        _ => return Ok(()),
    };
    let end = match frame.tag() {
        // One string filling the body: the usual case found at word speed.
        b'Q' | b'f'
            if body
                .split_last()
                .is_some_and(|(&l, s)| l == 0 && !s.contains(&0)) =>
        {
            0
        }
        b'Q' | b'f' => skip_cstr(body, what)?.len(),
        b'S' | b'H' | b'c' => body.len(),
        b'E' => {
            let rest = skip_cstr(body, what)?;
            read_i32(rest, 0, what)?;
            rest.len() - 4
        }
        b'D' | b'C' => {
            let (&kind, rest) = body.split_first().ok_or_else(|| malformed(what, "empty"))?;
            if kind != b'S' && kind != b'P' {
                return Err(malformed(what, format!("kind {:?}", kind as char)));
            }
            skip_cstr(rest, what)?.len()
        }
        b'P' => {
            let rest = skip_cstr(body, what)?;
            let rest = skip_cstr(rest, what)?;
            let n = count(rest, 0, what)?;
            rest.len()
                .checked_sub(2 + 4 * n)
                .ok_or_else(|| malformed(what, "truncated"))?
        }
        _ => {
            let rest = skip_cstr(body, what)?;
            let rest = skip_cstr(rest, what)?;
            let mut at = 2 + 2 * count(rest, 0, what)?;
            for _ in 0..count(rest, at, what)? {
                let len = read_i32(rest, at + 2, what)?;
                at += 4 + usize::try_from(len.max(0)).unwrap_or(0);
                if len < -1 {
                    return Err(malformed(what, "negative parameter length"));
                }
            }
            at += 2;
            at += 2 + 2 * count(rest, at, what)?;
            rest.len()
                .checked_sub(at)
                .ok_or_else(|| malformed(what, "truncated"))?
        }
    };
    if end != 0 {
        return Err(malformed(what, format!("{end} bytes after the end")));
    }
    Ok(())
}
