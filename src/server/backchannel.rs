//! Back-channel logout notices (OpenID Connect Back-Channel Logout 1.0): a logout token POSTed
//! as the form field `logout_token` to each client's `backchannel_logout_uri`, by a pool of
//! sender threads.
//!
//! Invariants: a worker only queues (signing and sending happen on the senders), so neither
//! a slow receiver nor the RSA signature delays the user's redirect; `SENDERS` requests run at
//! once, each bounded by the outbound deadline, so one slow or failing receiver holds one sender
//! and the others go on; the outbound guard applies (private ranges refused unless
//! `clients.http.disallow_private_ip_ranges` is off or the URL is an exception, plain `http`
//! only in `--dev`); a notice is
//! tried once (as Hydra); a failure and a notice dropped because the queue is full are counted
//! and logged, without the token.

use crate::jose::jws::Signer;
use crate::oauth2::logout::{self as rules, logout_token_claims};
use crate::server::keys::{self, ID_TOKEN_SET};
use crate::server::outbound::{exchange_blocking, status_of, Method};
use crate::server::state::Worker;
use hydra_storage::Storage;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

/// Notices sent at once.
const SENDERS: usize = 8;
/// Notices waiting for a sender; more are dropped (and counted).
const QUEUE: usize = 4096;

use crate::server::metrics::BACKCHANNEL;

/// One notice to one client.
pub struct Notice {
    pub client_id: String,
    pub uri: String,
    pub sid: String,
    pub issuer: String,
    pub signer: Arc<Signer>,
    pub allow_private: bool,
    pub allow_http: bool,
}

fn queue() -> Option<&'static SyncSender<Notice>> {
    static Q: OnceLock<Option<SyncSender<Notice>>> = OnceLock::new();
    Q.get_or_init(|| {
        let (tx, rx) = sync_channel::<Notice>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..SENDERS {
            let rx = rx.clone();
            if std::thread::Builder::new().name(format!("backchannel-{i}")).spawn(move || run(&rx)).is_ok() {
                started += 1;
            }
        }
        (started > 0).then_some(tx)
    })
    .as_ref()
}

fn run(rx: &Mutex<Receiver<Notice>>) {
    loop {
        // The lock is held only while waiting for the next notice, never while sending.
        let next = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok(n) = next else { return };
        match send(&n) {
            Ok(()) => {
                BACKCHANNEL.sent.fetch_add(1, Relaxed);
            }
            Err(e) => {
                BACKCHANNEL.failed.fetch_add(1, Relaxed);
                crate::warn!("a back-channel logout notice failed", "client_id" = n.client_id, "error" = e);
            }
        }
    }
}

fn send(n: &Notice) -> Result<(), String> {
    let jti = crate::oauth2::client::generate_uuid_v4(&ring::rand::SystemRandom::new())
        .map_err(|_| "no randomness available".to_string())?;
    let now = crate::server::state::unix_now();
    let claims = logout_token_claims(&n.issuer, &n.client_id, &n.sid, &jti, now);
    let token = n.signer.sign_typed(claims.to_string().as_bytes(), "logout+jwt").map_err(|e| e.to_string())?;
    let mut body = String::from("logout_token=");
    crate::http::form::form_escape(&token, &mut body);
    let raw = exchange_blocking(&n.uri, Method::PostForm(body.as_bytes()), n.allow_private, n.allow_http)?;
    match status_of(&raw)? {
        200..=299 => Ok(()),
        s => Err(format!("the receiver answered {s}")),
    }
}

/// Queues notices; returns at once.
pub fn dispatch(notices: Vec<Notice>) {
    for n in notices {
        let client = n.client_id.clone();
        let refused = match queue() {
            Some(q) => match q.try_send(n) {
                Ok(()) => false,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => true,
            },
            None => true,
        };
        if refused {
            BACKCHANNEL.dropped.fetch_add(1, Relaxed);
            crate::warn!("a back-channel logout notice was dropped: the queue is full", "client_id" = client);
        }
    }
}

/// Session `sid` of `subject` ended: queues a notice for every client that holds a consent in it
/// and registered a `backchannel_logout_uri`; returns the front-channel URLs the browser should
/// load (logout through the browser shows them; the admin API cannot).
pub async fn session_ended(w: &Worker, subject: &str, sid: &str) -> Result<Vec<String>, hydra_storage::StoreError> {
    let consents = w.shared.store.list_consents(subject).await?;
    let mut ids: Vec<&str> =
        consents.iter().filter(|c| c.login_session_id == sid).map(|c| c.client_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let cfg = w.config();
    let snapshot = w.shared.clients.load();
    let mut front = Vec::new();
    let mut back = Vec::new();
    for id in ids {
        let Some(e) = snapshot.clients.get(id) else { continue };
        let c = &e.stored.client;
        if !c.frontchannel_logout_uri.is_empty() {
            front.push(rules::frontchannel_url(
                &c.frontchannel_logout_uri,
                c.frontchannel_logout_session_required,
                &cfg.urls.issuer,
                sid,
            ));
        }
        if !c.backchannel_logout_uri.is_empty() {
            back.push((c.client_id.clone(), c.backchannel_logout_uri.clone()));
        }
    }
    if !back.is_empty() {
        match keys::signer(w, ID_TOKEN_SET).await {
            Ok(signer) => dispatch(
                back.into_iter()
                    .map(|(client_id, uri)| Notice {
                        allow_private: cfg.clients_http.allows_private(&uri),
                        client_id,
                        uri,
                        sid: sid.to_string(),
                        issuer: cfg.urls.issuer.clone(),
                        signer: signer.clone(),
                        allow_http: cfg.dev,
                    })
                    .collect(),
            ),
            Err(_) => crate::warn!("back-channel logout notices were not sent: no ID-token signing key"),
        }
    }
    Ok(front)
}
