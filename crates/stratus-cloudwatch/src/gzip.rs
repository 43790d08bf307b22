//! Request bodies compressed with gzip.
//!
//! botocore compresses PutMetricData bodies of 10 KiB or more
//! (`requestcompression` trait, encoding `gzip`) and sends them with
//! `Content-Encoding: gzip`; a json or CBOR body never starts with gzip's
//! magic bytes `1f 8b`, so the body alone tells. This is a DEFLATE decoder
//! (RFC 1951) inside the gzip member format (RFC 1952): stored, fixed and
//! dynamic Huffman blocks, concatenated members, CRC-32 and size checked.

/// Largest decompressed body accepted (bytes); more is an error rather
/// than memory spent on a compression bomb.
pub const MAX_INFLATED_BYTES: usize = 16 * 1024 * 1024;

/// Whether `body` starts like a gzip member.
pub fn is_gzip(body: &[u8]) -> bool {
    body.len() >= 2 && body[0] == 0x1f && body[1] == 0x8b
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u64,
    n: u32,
}

impl Bits<'_> {
    fn bits(&mut self, need: u32) -> Result<u32, String> {
        while self.n < need {
            let b = *self
                .data
                .get(self.pos)
                .ok_or("the compressed data ends early")?;
            self.pos += 1;
            self.buf |= u64::from(b) << self.n;
            self.n += 8;
        }
        let v = (self.buf & ((1u64 << need) - 1)) as u32;
        self.buf >>= need;
        self.n -= need;
        Ok(v)
    }

    fn align(&mut self) {
        self.buf = 0;
        self.n = 0;
    }
}

struct Huffman {
    count: [u16; 16],
    symbol: Vec<u16>,
}

impl Huffman {
    fn new(lengths: &[u8]) -> Result<Huffman, String> {
        let mut count = [0u16; 16];
        for &l in lengths {
            count[usize::from(l)] += 1;
        }
        count[0] = 0;
        let mut left: i32 = 1;
        for c in count.iter().skip(1) {
            left = (left << 1) - i32::from(*c);
            if left < 0 {
                return Err("a Huffman code is over-subscribed".into());
            }
        }
        let mut offs = [0u16; 16];
        for len in 1..15 {
            offs[len + 1] = offs[len] + count[len];
        }
        let mut symbol = vec![0u16; lengths.len()];
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[usize::from(offs[usize::from(l)])] = sym as u16;
                offs[usize::from(l)] += 1;
            }
        }
        Ok(Huffman { count, symbol })
    }

    fn decode(&self, s: &mut Bits<'_>) -> Result<u16, String> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..16 {
            code |= s.bits(1)? as i32;
            let count = i32::from(self.count[len]);
            if code - count < first {
                return self
                    .symbol
                    .get((index + (code - first)) as usize)
                    .copied()
                    .ok_or_else(|| "a Huffman code is incomplete".to_string());
            }
            index += count;
            first += count;
            first <<= 1;
            code <<= 1;
        }
        Err("a Huffman code is longer than 15 bits".into())
    }
}

const LBASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEXT: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DBASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DEXT: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

fn codes(s: &mut Bits<'_>, out: &mut Vec<u8>, lit: &Huffman, dist: &Huffman) -> Result<(), String> {
    loop {
        let sym = lit.decode(s)?;
        match sym {
            0..=255 => out.push(sym as u8),
            256 => return Ok(()),
            _ => {
                let i = usize::from(sym - 257);
                if i >= 29 {
                    return Err("an invalid length code".into());
                }
                let len = usize::from(LBASE[i]) + s.bits(u32::from(LEXT[i]))? as usize;
                let d = usize::from(dist.decode(s)?);
                if d >= 30 {
                    return Err("an invalid distance code".into());
                }
                let back = usize::from(DBASE[d]) + s.bits(u32::from(DEXT[d]))? as usize;
                if back > out.len() {
                    return Err("a distance reaches before the start of the data".into());
                }
                if out.len() + len > MAX_INFLATED_BYTES {
                    return Err(format!(
                        "the data inflates to more than {MAX_INFLATED_BYTES} bytes"
                    ));
                }
                let start = out.len() - back;
                for k in 0..len {
                    let b = out[start + k];
                    out.push(b);
                }
            }
        }
        if out.len() > MAX_INFLATED_BYTES {
            return Err(format!(
                "the data inflates to more than {MAX_INFLATED_BYTES} bytes"
            ));
        }
    }
}

/// Decodes a raw DEFLATE stream; returns the data and the bytes consumed.
fn inflate(data: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let mut s = Bits {
        data,
        pos: 0,
        buf: 0,
        n: 0,
    };
    let mut out = Vec::new();
    loop {
        let last = s.bits(1)?;
        match s.bits(2)? {
            0 => {
                s.align();
                let hdr = data
                    .get(s.pos..s.pos + 4)
                    .ok_or("a stored block ends early")?;
                let len = usize::from(u16::from_le_bytes([hdr[0], hdr[1]]));
                let nlen = u16::from_le_bytes([hdr[2], hdr[3]]);
                if nlen != !(len as u16) {
                    return Err("a stored block's length check fails".into());
                }
                s.pos += 4;
                let block = data
                    .get(s.pos..s.pos + len)
                    .ok_or("a stored block ends early")?;
                out.extend_from_slice(block);
                s.pos += len;
                if out.len() > MAX_INFLATED_BYTES {
                    return Err(format!(
                        "the data inflates to more than {MAX_INFLATED_BYTES} bytes"
                    ));
                }
            }
            1 => {
                let mut l = [0u8; 288];
                l[..144].fill(8);
                l[144..256].fill(9);
                l[256..280].fill(7);
                l[280..].fill(8);
                let lit = Huffman::new(&l)?;
                let dist = Huffman::new(&[5u8; 30])?;
                codes(&mut s, &mut out, &lit, &dist)?;
            }
            2 => {
                let nlen = s.bits(5)? as usize + 257;
                let ndist = s.bits(5)? as usize + 1;
                let ncode = s.bits(4)? as usize + 4;
                if nlen > 286 || ndist > 30 {
                    return Err("a dynamic block has too many codes".into());
                }
                const ORDER: [usize; 19] = [
                    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
                ];
                let mut cl = [0u8; 19];
                for &i in ORDER.iter().take(ncode) {
                    cl[i] = s.bits(3)? as u8;
                }
                let lencode = Huffman::new(&cl)?;
                let mut lengths = vec![0u8; nlen + ndist];
                let mut i = 0;
                while i < nlen + ndist {
                    let sym = lencode.decode(&mut s)?;
                    let (value, repeat) = match sym {
                        0..=15 => (sym as u8, 1),
                        16 => {
                            let prev = *lengths[..i]
                                .last()
                                .ok_or("a repeat with no previous length")?;
                            (prev, 3 + s.bits(2)? as usize)
                        }
                        17 => (0, 3 + s.bits(3)? as usize),
                        _ => (0, 11 + s.bits(7)? as usize),
                    };
                    if i + repeat > nlen + ndist {
                        return Err("code lengths overrun the block's codes".into());
                    }
                    lengths[i..i + repeat].fill(value);
                    i += repeat;
                }
                if lengths[256] == 0 {
                    return Err("a dynamic block has no end-of-block code".into());
                }
                let lit = Huffman::new(&lengths[..nlen])?;
                let dist = Huffman::new(&lengths[nlen..])?;
                codes(&mut s, &mut out, &lit, &dist)?;
            }
            _ => return Err("a block has the reserved type 3".into()),
        }
        if last == 1 {
            return Ok((out, s.pos));
        }
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Decompresses a gzip body (one or more members).
///
/// Errors: a message saying what is wrong (bad header, corrupt data, CRC or
/// size mismatch, more than [`MAX_INFLATED_BYTES`]).
pub fn gunzip(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        if body.len() < 18 || !is_gzip(body) || body[2] != 8 {
            return Err("not a gzip member with DEFLATE data".into());
        }
        let flags = body[3];
        let mut p = 10;
        if flags & 4 != 0 {
            let x = body.get(p..p + 2).ok_or("the gzip header ends early")?;
            p += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
        }
        for bit in [8u8, 16] {
            if flags & bit != 0 {
                let end = body
                    .get(p..)
                    .and_then(|r| r.iter().position(|&b| b == 0))
                    .ok_or("the gzip header ends early")?;
                p += end + 1;
            }
        }
        if flags & 2 != 0 {
            p += 2;
        }
        let rest = body.get(p..).ok_or("the gzip header ends early")?;
        let (data, used) = inflate(rest)?;
        let trailer = rest
            .get(used..used + 8)
            .ok_or("the gzip trailer is missing")?;
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc != crc32(&data) || size != data.len() as u32 {
            return Err("the gzip data does not match its checksum".into());
        }
        out.extend_from_slice(&data);
        if out.len() > MAX_INFLATED_BYTES {
            return Err(format!(
                "the data inflates to more than {MAX_INFLATED_BYTES} bytes"
            ));
        }
        body = &rest[used + 8..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Python's gzip.compress(..., mtime=0): level 9 (fixed and dynamic Huffman) and 0 (stored).
    const HELLO_GZ: &[u8] = &[
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9,
        0x57, 0xc8, 0x40, 0x27, 0x01, 0xe3, 0x51, 0x3d, 0x8d, 0x17, 0x00, 0x00, 0x00,
    ];
    const STORED_GZ: &[u8] = &[
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x03, 0x01, 0x07, 0x00, 0xf8, 0xff,
        0x73, 0x74, 0x6f, 0x72, 0x65, 0x64, 0x21, 0xa2, 0x65, 0xef, 0x09, 0x07, 0x00, 0x00, 0x00,
    ];
    const DYNAMIC_GZ: &[u8] = &[
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x75, 0xd4, 0xbd, 0x4a, 0x83,
        0x41, 0x14, 0x84, 0xe1, 0x5b, 0xf9, 0xd8, 0x3a, 0x84, 0x9d, 0x39, 0xfb, 0xeb, 0x3d, 0x68,
        0x69, 0x1f, 0x24, 0x85, 0x60, 0x1a, 0xd1, 0x2a, 0x78, 0xef, 0x22, 0x69, 0x76, 0x64, 0xa7,
        0x5c, 0x78, 0xab, 0x79, 0x96, 0x73, 0x4f, 0xcf, 0xd7, 0xaf, 0xcf, 0xf7, 0xb7, 0x97, 0xcb,
        0xed, 0x9a, 0x9e, 0x8e, 0x74, 0xcb, 0xe9, 0x74, 0xa4, 0xd7, 0xcb, 0xc7, 0xf7, 0xdf, 0x33,
        0x9f, 0xeb, 0xcf, 0xe9, 0xb8, 0xff, 0x6f, 0xb0, 0x36, 0x7d, 0xdf, 0x70, 0x6d, 0x50, 0xf6,
        0x51, 0xac, 0x11, 0xb1, 0x8f, 0x8a, 0x44, 0x63, 0x1f, 0xd5, 0x35, 0x8a, 0xba, 0x8f, 0xda,
        0x1a, 0x15, 0xee, 0xa3, 0x2e, 0xd1, 0xdc, 0x47, 0x63, 0x8d, 0x6a, 0xdb, 0x47, 0x73, 0x8d,
        0x5a, 0x98, 0x2d, 0x65, 0xf0, 0xee, 0x16, 0xd7, 0xc9, 0xcd, 0xe6, 0x90, 0xd1, 0x87, 0x19,
        0x1d, 0xb2, 0xfa, 0x34, 0xab, 0x43, 0x66, 0x9f, 0x66, 0x76, 0xc8, 0xee, 0xc8, 0x66, 0x78,
        0xc8, 0xf2, 0x80, 0x99, 0x1e, 0x5d, 0x33, 0x33, 0x3e, 0x64, 0x7d, 0xd0, 0xcc, 0x0f, 0xd9,
        0x1f, 0x61, 0x00, 0x98, 0xf5, 0xa7, 0x1a, 0x01, 0x42, 0x33, 0xf7, 0xed, 0xf5, 0xdf, 0x57,
        0x63, 0x40, 0x31, 0x40, 0x33, 0x08, 0x2c, 0x9a, 0x19, 0x05, 0xaa, 0x42, 0x37, 0x0a, 0x54,
        0x85, 0x61, 0x14, 0xa8, 0x0a, 0xc3, 0x28, 0x50, 0x15, 0xa6, 0x51, 0xa0, 0x28, 0x30, 0x1b,
        0x85, 0xc8, 0x7a, 0x0a, 0x8c, 0x42, 0x40, 0x33, 0xa3, 0x10, 0xa2, 0x40, 0xba, 0xf3, 0xa3,
        0xf7, 0x27, 0x8c, 0x42, 0xe8, 0x05, 0x0a, 0xa3, 0x10, 0xa2, 0xc0, 0x62, 0x14, 0x42, 0x14,
        0x58, 0x8d, 0x42, 0x74, 0xcd, 0x8c, 0x42, 0x88, 0x02, 0x9b, 0x51, 0x08, 0x55, 0xe8, 0x0f,
        0x85, 0x5f, 0xcf, 0x39, 0x5b, 0x71, 0xfd, 0x05, 0x00, 0x00,
    ];

    #[test]
    fn known_streams() {
        assert_eq!(
            gunzip(HELLO_GZ).unwrap(),
            b"hello hello hello hello".to_vec()
        );
        assert_eq!(gunzip(STORED_GZ).unwrap(), b"stored!".to_vec());
        let text: String = (0..40)
            .map(|i| format!("{{\"MetricName\": \"m{i}\", \"Value\": {}.5}}, ", i * 7))
            .collect();
        assert_eq!(gunzip(DYNAMIC_GZ).unwrap(), text.into_bytes());
        let two = [HELLO_GZ, STORED_GZ].concat();
        assert_eq!(
            gunzip(&two).unwrap(),
            b"hello hello hello hellostored!".to_vec()
        );
        assert!(gunzip(&HELLO_GZ[..20]).is_err());
        let mut bad = HELLO_GZ.to_vec();
        bad[24] ^= 1;
        assert!(gunzip(&bad).is_err());
    }

    #[test]
    fn crc_of_a_known_text() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
