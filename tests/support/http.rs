//! A deliberately small HTTP/1.1 request reader/writer for the fakes:
//! request line + headers up to a blank line, bodies only by Content-Length.

use std::fmt;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::runtime::READ_TIMEOUT;

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;

pub(crate) struct Head {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// First value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn request_line(&self) -> String {
        format!("{} {} {}", self.method, self.target, self.version)
    }

    pub fn content_length(&self) -> Result<usize, ReadError> {
        match self.header("content-length") {
            None => Ok(0),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .map_err(|_| ReadError::Bad(format!("bad Content-Length {v:?}"))),
        }
    }

    /// Whether the client asked to close after this exchange.
    pub fn wants_close(&self) -> bool {
        match self.header("connection") {
            Some(v) if v.to_ascii_lowercase().contains("close") => true,
            Some(v) if v.to_ascii_lowercase().contains("keep-alive") => false,
            _ => self.version.eq_ignore_ascii_case("HTTP/1.0"),
        }
    }
}

#[derive(Debug)]
pub(crate) enum ReadError {
    /// No data within READ_TIMEOUT.
    Timeout,
    /// The peer closed (or reset) in the middle of a head or body.
    Closed,
    TooLarge,
    Bad(String),
    Io(std::io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Timeout => write!(f, "read timed out after {READ_TIMEOUT:?}"),
            ReadError::Closed => write!(f, "peer closed mid-request"),
            ReadError::TooLarge => write!(f, "request too large"),
            ReadError::Bad(m) => write!(f, "malformed request: {m}"),
            ReadError::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

/// Reads more bytes into `buf`; Ok(0) on EOF.
async fn fill<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<usize, ReadError> {
    let mut chunk = [0u8; 8192];
    match timeout(READ_TIMEOUT, r.read(&mut chunk)).await {
        Err(_) => Err(ReadError::Timeout),
        Ok(Err(e)) => match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe => Ok(0),
            _ => Err(ReadError::Io(e)),
        },
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
        return Some((i, i + 4));
    }
    buf.windows(2)
        .position(|w| w == b"\n\n")
        .map(|i| (i, i + 2))
}

/// Reads one request head. `buf` carries bytes between calls (pipelining / tunnel data):
/// on return it holds whatever followed the head. Ok(None): the peer closed cleanly
/// before sending anything.
pub(crate) async fn read_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Option<Head>, ReadError> {
    loop {
        if let Some((end, after)) = find_head_end(buf) {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..after);
            return parse_head(&text).map(Some);
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::TooLarge);
        }
        if fill(r, buf).await? == 0 {
            return if buf.iter().all(|b| b.is_ascii_whitespace()) {
                Ok(None)
            } else {
                Err(ReadError::Closed)
            };
        }
    }
}

fn parse_head(text: &str) -> Result<Head, ReadError> {
    // Tolerate stray blank lines before the request line (RFC 9112 §2.2).
    let mut lines = text
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .skip_while(|l| l.is_empty());
    let first = lines
        .next()
        .ok_or_else(|| ReadError::Bad("empty request".into()))?;
    let parts: Vec<&str> = first.split_whitespace().collect();
    let [method, target, version] = parts[..] else {
        return Err(ReadError::Bad(format!("bad request line {first:?}")));
    };
    if !version.starts_with("HTTP/") {
        return Err(ReadError::Bad(format!("bad request line {first:?}")));
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            return Err(ReadError::Bad(format!("bad header line {line:?}")));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
    })
}

/// Reads (and returns) a body of `len` bytes, starting with what `buf` already holds.
pub(crate) async fn read_body<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    len: usize,
) -> Result<Vec<u8>, ReadError> {
    if len > MAX_BODY {
        return Err(ReadError::TooLarge);
    }
    while buf.len() < len {
        if fill(r, buf).await? == 0 {
            return Err(ReadError::Closed);
        }
    }
    Ok(buf.drain(..len).collect())
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Unknown",
    }
}

/// Writes a complete response; adds Content-Length and Connection itself.
pub(crate) async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    send_body: bool,
    close: bool,
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    out.push_str(if close {
        "Connection: close\r\n\r\n"
    } else {
        "Connection: keep-alive\r\n\r\n"
    });
    let mut bytes = out.into_bytes();
    if send_body {
        bytes.extend_from_slice(body);
    }
    write_all(w, &bytes).await
}

/// `write_all` + flush bounded by READ_TIMEOUT, so a client that stops reading cannot wedge a task.
pub(crate) async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
) -> std::io::Result<()> {
    match timeout(READ_TIMEOUT, async {
        w.write_all(bytes).await?;
        w.flush().await
    })
    .await
    {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "write timed out",
        )),
    }
}

/// Standard base64 (with padding), for Basic auth.
pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ------------------------------------------------------------ for the TLS front (front.rs)

/// A response head (status line + headers), as read from an upstream server.
pub(crate) struct ResponseHead {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// First value of a header, matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response head, like `read_head` does for requests. Ok(None): the peer closed
/// cleanly before sending anything.
pub(crate) async fn read_response_head<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<Option<ResponseHead>, ReadError> {
    loop {
        if let Some((end, after)) = find_head_end(buf) {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..after);
            return parse_response_head(&text).map(Some);
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::TooLarge);
        }
        if fill(r, buf).await? == 0 {
            return if buf.iter().all(|b| b.is_ascii_whitespace()) {
                Ok(None)
            } else {
                Err(ReadError::Closed)
            };
        }
    }
}

fn parse_response_head(text: &str) -> Result<ResponseHead, ReadError> {
    let mut lines = text
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .skip_while(|l| l.is_empty());
    let first = lines
        .next()
        .ok_or_else(|| ReadError::Bad("empty response".into()))?;
    let mut parts = first.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status = parts.next().unwrap_or("");
    let reason = parts.next().unwrap_or("").trim();
    if !version.starts_with("HTTP/") {
        return Err(ReadError::Bad(format!("bad status line {first:?}")));
    }
    let status = status
        .parse::<u16>()
        .ok()
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| ReadError::Bad(format!("bad status line {first:?}")))?;
    let mut headers = Vec::new();
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            return Err(ReadError::Bad(format!("bad header line {line:?}")));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(ResponseHead {
        version: version.to_string(),
        status,
        reason: reason.to_string(),
        headers,
    })
}

/// Whether a Transfer-Encoding value ends in `chunked`.
pub(crate) fn is_chunked(transfer_encoding: Option<&str>) -> bool {
    transfer_encoding.is_some_and(|v| {
        v.rsplit(',')
            .next()
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
    })
}

/// Reads `len` bytes (at most `max`), starting with what `buf` already holds.
pub(crate) async fn read_exact_limited<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    len: usize,
    max: usize,
) -> Result<Vec<u8>, ReadError> {
    if len > max {
        return Err(ReadError::TooLarge);
    }
    while buf.len() < len {
        if fill(r, buf).await? == 0 {
            return Err(ReadError::Closed);
        }
    }
    Ok(buf.drain(..len).collect())
}

/// Reads until the peer closes (a body delimited by the end of the connection), at most `max`.
pub(crate) async fn read_to_close<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<Vec<u8>, ReadError> {
    loop {
        if buf.len() > max {
            return Err(ReadError::TooLarge);
        }
        if fill(r, buf).await? == 0 {
            return Ok(std::mem::take(buf));
        }
    }
}

/// Reads a whole `Transfer-Encoding: chunked` body (chunks, last chunk, trailers, final CRLF)
/// and returns it exactly as sent, still chunked, so it can be relayed intact.
pub(crate) async fn read_chunked_raw<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<Vec<u8>, ReadError> {
    // Offset of the next unparsed byte in `buf`.
    let mut pos = 0usize;
    // Returns the end of the line starting at `pos` (index just past '\n'), reading more as needed.
    async fn line_end<R: AsyncRead + Unpin>(
        r: &mut R,
        buf: &mut Vec<u8>,
        pos: usize,
        max: usize,
    ) -> Result<usize, ReadError> {
        loop {
            if let Some(i) = buf[pos..].iter().position(|&b| b == b'\n') {
                return Ok(pos + i + 1);
            }
            if buf.len() > max + MAX_HEAD {
                return Err(ReadError::TooLarge);
            }
            if fill(r, buf).await? == 0 {
                return Err(ReadError::Closed);
            }
        }
    }
    loop {
        let end = line_end(r, buf, pos, max).await?;
        let line = String::from_utf8_lossy(&buf[pos..end]).into_owned();
        let size_text = line
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let size = usize::from_str_radix(&size_text, 16)
            .map_err(|_| ReadError::Bad(format!("bad chunk size line {:?}", line.trim_end())))?;
        pos = end;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let end = line_end(r, buf, pos, max).await?;
                let empty = buf[pos..end].iter().all(|b| *b == b'\r' || *b == b'\n');
                pos = end;
                if empty {
                    return Ok(buf.drain(..pos).collect());
                }
            }
        }
        if pos + size > max {
            return Err(ReadError::TooLarge);
        }
        while buf.len() < pos + size {
            if fill(r, buf).await? == 0 {
                return Err(ReadError::Closed);
            }
        }
        pos += size;
        // The CRLF after the chunk data.
        let end = line_end(r, buf, pos, max).await?;
        if !buf[pos..end].iter().all(|b| *b == b'\r' || *b == b'\n') {
            return Err(ReadError::Bad("chunk data longer than its size".into()));
        }
        pos = end;
    }
}
