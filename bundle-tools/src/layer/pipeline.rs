//! One thread per layer reads the blob, hashes it and decompresses it into
//! a bounded channel, so inflate overlaps the filesystem writes of the
//! extraction thread (and the next layer starts while this one is written).

use crate::blobs::{Compression, Digest, Hasher, Store};
use anyhow::{anyhow, bail, Context, Result};
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

const CHUNK: usize = 1 << 20;
const DEPTH: usize = 8;

enum Msg {
    Data(Vec<u8>),
    End(std::result::Result<(), String>),
}

/// Shared counters: compressed bytes read (progress) and uncompressed bytes
/// produced across all layers (the `--max-size` bomb limit).
#[derive(Default)]
pub struct Counters {
    pub compressed: AtomicU64,
    pub uncompressed: AtomicU64,
}

pub struct LayerStream {
    rx: Receiver<Msg>,
    cur: Vec<u8>,
    pos: usize,
    verified: Option<std::result::Result<(), String>>,
    handle: Option<JoinHandle<()>>,
}

struct Counting<R> {
    inner: R,
    c: Arc<Counters>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.c.compressed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Start decompressing one layer blob. `diff_id`, when the config gives
/// one, is checked against the hash of the uncompressed stream.
pub fn spawn(
    store: &Store,
    digest: Digest,
    size: u64,
    comp: Compression,
    diff_id: Option<Digest>,
    counters: Arc<Counters>,
    max_size: u64,
) -> Result<LayerStream> {
    let verified = store.open(&digest, size)?;
    let (tx, rx) = sync_channel::<Msg>(DEPTH);
    let handle = std::thread::Builder::new()
        .name(format!("layer-{}", &digest.hex()[..12]))
        .spawn(move || {
            let res = produce(verified, &digest, comp, diff_id, &counters, max_size, &tx);
            let _ = tx.send(Msg::End(res.map_err(|e| format!("{e:#}"))));
        })
        .context("spawn decompression thread")?;
    Ok(LayerStream {
        rx,
        cur: Vec::new(),
        pos: 0,
        verified: None,
        handle: Some(handle),
    })
}

fn produce(
    mut verified: crate::blobs::VerifiedReader<std::fs::File>,
    digest: &Digest,
    comp: Compression,
    diff_id: Option<Digest>,
    counters: &Arc<Counters>,
    max_size: u64,
    tx: &std::sync::mpsc::SyncSender<Msg>,
) -> Result<()> {
    {
        let counting = Counting {
            inner: &mut verified,
            c: counters.clone(),
        };
        let mut dec = comp.decoder(counting)?;
        let mut uncompressed = diff_id.as_ref().map(|d| Hasher::new(d.algorithm()));
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut n = 0;
            // Fill most of a chunk so the channel carries few, large messages.
            while n < CHUNK / 2 {
                match dec.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e).with_context(|| format!("blob {digest}: decompress")),
                }
            }
            if n == 0 {
                break;
            }
            let total = counters.uncompressed.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
            if total > max_size {
                bail!("blob {digest}: uncompressed image content exceeds the --max-size limit of {max_size} bytes");
            }
            buf.truncate(n);
            if let Some(h) = uncompressed.as_mut() {
                h.update(&buf);
            }
            if tx.send(Msg::Data(buf)).is_err() {
                // The extractor stopped (it failed); its error is reported.
                return Ok(());
            }
        }
        if let (Some(h), Some(want)) = (uncompressed, diff_id.as_ref()) {
            let got = h.finish();
            if &got != want {
                bail!("blob {digest}: uncompressed content hashes to {got}, config diff_id says {want}");
            }
        }
    }
    verified.finish()
}

impl LayerStream {
    /// Read to the end of the stream (tar padding after the end marker) and
    /// return the blob's verification result.
    pub fn finish(mut self) -> Result<()> {
        io::copy(&mut self, &mut io::sink()).context("drain layer stream")?;
        match self.verified.take() {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(anyhow!(e)),
            None => bail!("layer stream ended without a verification result"),
        }
    }
}

impl Read for LayerStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.cur.len() {
                let n = buf.len().min(self.cur.len() - self.pos);
                buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if let Some(v) = &self.verified {
                return match v {
                    Ok(()) => Ok(0),
                    Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e.clone())),
                };
            }
            match self.rx.recv() {
                Ok(Msg::Data(d)) => {
                    self.cur = d;
                    self.pos = 0;
                }
                Ok(Msg::End(r)) => self.verified = Some(r),
                Err(_) => {
                    self.verified = Some(Err("decompression thread exited unexpectedly".into()))
                }
            }
        }
    }
}

impl Drop for LayerStream {
    fn drop(&mut self) {
        // Unblock the producer (its sends fail once rx is gone) and reap it.
        let (_, dead) = sync_channel(0);
        drop(std::mem::replace(&mut self.rx, dead));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
