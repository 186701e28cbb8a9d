use super::{WireError, HEADER_LEN};

/// Follows frame boundaries in a byte stream without copying or decoding it.
///
/// The relay feeds every chunk it forwards; the scanner reports each frame
/// header it completes and remembers partial headers and bodies across
/// chunks. This is the production relay's only per-byte work.
#[derive(Clone, Debug)]
pub struct FrameScanner {
    header: [u8; HEADER_LEN],
    have: usize,
    remaining: usize,
    max: usize,
}

impl FrameScanner {
    /// A scanner refusing frames longer than `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> FrameScanner {
        FrameScanner {
            header: [0; HEADER_LEN],
            have: 0,
            remaining: 0,
            max: max_message_size,
        }
    }

    /// True when the bytes fed so far end exactly at a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.have == 0 && self.remaining == 0
    }

    /// Scans `data`, calling `on_frame(tag, total_len)` for each header
    /// completed in it. Returns the number of headers completed.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        mut on_frame: impl FnMut(u8, usize),
    ) -> Result<u64, WireError> {
        let mut frames = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            if self.have == 0 && data.len() >= HEADER_LEN {
                let len = frame_len(data, self.max)?;
                on_frame(data[0], len);
                frames += 1;
                let n = len.min(data.len());
                self.remaining = len - n;
                data = &data[n..];
                continue;
            }
            let n = (HEADER_LEN - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == HEADER_LEN {
                let header = self.header;
                let len = frame_len(&header, self.max)?;
                on_frame(header[0], len);
                frames += 1;
                self.have = 0;
                self.remaining = len - HEADER_LEN;
            }
        }
        Ok(frames)
    }
}

/// Total length (type byte included) of the frame whose header starts
/// `buf` (at least [`HEADER_LEN`] bytes); frames over `max` are refused.
pub(crate) fn frame_len(buf: &[u8], max: usize) -> Result<usize, WireError> {
    let declared = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if declared < 4 {
        return Err(WireError::InvalidLength(declared.into()));
    }
    let len = declared as usize + 1;
    if len > max {
        return Err(WireError::TooLarge { len, max });
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(chunks: &[&[u8]]) -> Vec<(u8, usize)> {
        let mut s = FrameScanner::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |t, l| out.push((t, l))).unwrap();
        }
        assert!(s.at_boundary());
        out
    }

    #[test]
    fn whole_and_split_frames() {
        let stream: &[u8] = b"Q\0\0\0\x06a\0S\0\0\0\x04D\0\0\0\x05z";
        let expected = vec![(b'Q', 7), (b'S', 5), (b'D', 6)];
        assert_eq!(frames(&[stream]), expected);
        for cut in 1..stream.len() {
            assert_eq!(frames(&[&stream[..cut], &stream[cut..]]), expected);
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(frames(&bytes), expected);
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut s = FrameScanner::new(100);
        assert!(s.feed(b"Q\0\0\0\x03", |_, _| {}).is_err());
        let mut s = FrameScanner::new(100);
        assert!(matches!(
            s.feed(b"Q\0\0\x01\0", |_, _| {}),
            Err(WireError::TooLarge { len: 257, max: 100 })
        ));
    }
}
