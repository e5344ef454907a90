//! A scraper for a run with `[observe]`: it reads the coordinator's operator
//! endpoints at a fixed interval, as Prometheus and an operator's console
//! would, so that a run measures what serving them costs a round.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// A scraper running until [`Scraper::stop`].
#[derive(Debug)]
pub struct Scraper {
    task: JoinHandle<Vec<Scrapes>>,
    stop: tokio::sync::watch::Sender<bool>,
}

/// What a scraper read from one target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrapes {
    /// The path read.
    pub path: String,
    /// Requests answered with 200.
    pub answered: u64,
    /// Requests that failed or were answered otherwise.
    pub failed: u64,
    /// Bytes of the answers.
    pub bytes: u64,
    /// Wall time of all its requests, connection to last byte.
    pub seconds: f64,
}

impl Scraper {
    /// GETs each of `targets` (address and path) every `interval`, from now on.
    pub fn start(targets: Vec<(SocketAddr, String)>, interval: Duration) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut scrapes: Vec<Scrapes> = targets
                .iter()
                .map(|(_, path)| Scrapes {
                    path: path.clone(),
                    ..Scrapes::default()
                })
                .collect();
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // The first tick is due at once: a run scrapes at least once.
                tokio::select! {
                    biased;
                    _ = ticks.tick() => {}
                    _ = stopped.wait_for(|stop| *stop) => break,
                }
                for ((address, path), scrapes) in targets.iter().zip(&mut scrapes) {
                    let started = std::time::Instant::now();
                    let answer = get(*address, path).await;
                    scrapes.seconds += started.elapsed().as_secs_f64();
                    match answer {
                        Ok((200, bytes)) => {
                            scrapes.answered += 1;
                            scrapes.bytes += bytes;
                        }
                        Ok(_) | Err(_) => scrapes.failed += 1,
                    }
                }
            }
            scrapes
        });
        Self { task, stop }
    }

    /// Stops scraping; returns what was read from each target.
    pub async fn stop(self) -> Vec<Scrapes> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// `GET path` over HTTP/1.1: the status code and the response's length.
async fn get(address: SocketAddr, path: &str) -> std::io::Result<(u16, u64)> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let status = std::str::from_utf8(&response[..response.len().min(12)])
        .ok()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    Ok((status, response.len() as u64))
}
