//! Live updates: `/events`, a server-sent event stream fed by the
//! federation's event bus and the round in flight, and the page's script,
//! which re-fetches the fragments an event concerns. Events carry only which
//! fragments to refresh, never data: the data comes from the fragment, through
//! the same rendering and escaping as the page.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use tokio_stream::wrappers::{BroadcastStream, WatchStream};
use tokio_stream::{Stream, StreamExt};

use crate::federation::{Federation, FederationEvent};
use crate::rounds::live::LiveRound;

/// The page's script (served as `/console.js`, loaded first): records
/// every script error and content-security-policy violation into
/// `window.consoleErrors` (the browser tests read it), listens to `/events` and swaps in each fragment an event names, and
/// counts the open stage's deadline down.
pub const SCRIPT: &str = r#""use strict";
window.consoleErrors = [];
window.consoleRefreshes = 0;
window.addEventListener("error", (e) => window.consoleErrors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => window.consoleErrors.push(String(e.reason)));
document.addEventListener("securitypolicyviolation", (e) => window.consoleErrors.push("CSP: " + e.violatedDirective + " " + e.blockedURI));
async function refresh(name) {
  const section = document.getElementById(name);
  if (!section) return;
  const response = await fetch("/fragment/" + name, { cache: "no-store" });
  if (!response.ok) throw new Error("fragment " + name + ": HTTP " + response.status);
  section.innerHTML = await response.text();
  window.consoleRefreshes += 1;
  if (name === "stage") startCountdown();
}
let countdown = null;
function startCountdown() {
  if (countdown) clearInterval(countdown);
  const span = document.getElementById("countdown");
  if (!span) return;
  const end = performance.now() + Number(span.dataset.remainingMs);
  const tick = () => { span.textContent = Math.max(0, Math.ceil((end - performance.now()) / 1000)) + " s"; };
  tick();
  countdown = setInterval(tick, 1000);
}
document.addEventListener("DOMContentLoaded", () => {
  startCountdown();
  if (!document.getElementById("rounds")) return;
  const events = new EventSource("/events");
  events.addEventListener("refresh", (e) => {
    for (const name of e.data.split(" ")) refresh(name).catch((error) => window.consoleErrors.push(String(error)));
  });
});
"#;

/// What to tell the page, or that the stream ends.
enum Signal {
    Refresh(&'static str),
    Stop,
}

/// The fragments `event` changes (see `super::pages::FRAGMENTS`).
fn refreshes(event: &FederationEvent) -> Option<&'static str> {
    match event {
        FederationEvent::RoundCompleted(_) => Some("rounds privacy nodes stage"),
        // Follows its round's `RoundCompleted`; the console shows no timing.
        FederationEvent::RoundTimed(_) => None,
        FederationEvent::RoundFailed(_) => Some("failed privacy"),
        FederationEvent::Finished { .. } | FederationEvent::Reopened { .. } => {
            Some("rounds nodes stage")
        }
        FederationEvent::NodeRegistered { .. } => Some("nodes"),
        FederationEvent::ConnectionRefused { .. } => None,
    }
}

/// The `/events` stream: a `refresh` event naming fragments whenever the
/// federation moves on or the open stage changes; it ends when the
/// coordinator shuts down (so that shutdown does not wait on open pages).
pub fn events(
    federation: &Federation,
    live: &LiveRound,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let federation_events = BroadcastStream::new(federation.subscribe()).filter_map(|received| {
        match received {
            Ok(event) => refreshes(&event).map(Signal::Refresh),
            // Fell behind: refresh everything.
            Err(_) => Some(Signal::Refresh("rounds privacy nodes stage failed")),
        }
    });
    let stage_changes = WatchStream::from_changes(live.changes()).map(|_| Signal::Refresh("stage"));
    let stopping = WatchStream::new(federation.shutdown_signal())
        .filter(|stop| *stop)
        .map(|_| Signal::Stop);
    let stream = federation_events
        .merge(stage_changes)
        .merge(stopping)
        .take_while(|signal| !matches!(signal, Signal::Stop))
        .filter_map(|signal| match signal {
            Signal::Refresh(names) => Some(Ok(Event::default().event("refresh").data(names))),
            Signal::Stop => None,
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
