//! Progress on a terminal (compressed bytes read, current layer); nothing
//! when stderr is not a tty.

use crate::layer::pipeline::Counters;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub struct Progress {
    bar: Option<ProgressBar>,
    layers: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn new(enabled: bool, total: u64, layers: usize, counters: Arc<Counters>) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if !enabled {
            return Progress {
                bar: None,
                layers,
                stop,
                ticker: None,
            };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        // The decompression threads only bump a counter; this thread draws.
        let (b, s) = (bar.clone(), stop.clone());
        let ticker = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    b.set_position(counters.compressed.load(Ordering::Relaxed));
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .ok();
        Progress {
            bar: Some(bar),
            layers,
            stop,
            ticker,
        }
    }

    pub fn layer(&self, i: usize) {
        if let Some(b) = &self.bar {
            b.set_prefix(format!("layer {}/{}", i + 1, self.layers));
            b.tick();
        }
    }

    pub fn done(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}
