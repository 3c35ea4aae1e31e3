//! Reading a fuzzer's bytes as a sequence of small decisions and length-prefixed chunks.
#![allow(dead_code)]

/// The fuzzer's input, consumed front to back; every read is total (short input: `None`).
pub struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    /// One byte.
    pub fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    /// Two bytes, big-endian.
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }

    /// A chunk whose length is the next byte (up to 255 bytes; less if the input ends).
    pub fn chunk(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(self.byte()?).min(self.0.len());
        let (chunk, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(chunk)
    }

    /// A chunk with a two-byte length (up to 64 KiB).
    pub fn long_chunk(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(self.u16()?).min(self.0.len());
        let (chunk, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(chunk)
    }

    /// Whether anything is left.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
