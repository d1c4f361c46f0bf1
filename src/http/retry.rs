//! One retry policy for every service call. What is retried: 5xx, 429, a 403 that is a
//! rate limit (GitHub's), and transport failures (cannot connect, timed out). How long
//! to wait: what the answer says (`Retry-After` in seconds or as an HTTP date; GitHub's
//! `x-ratelimit-remaining: 0` until `x-ratelimit-reset`; at least a minute for a rate
//! limit that gives no time), else backoff doubling from `first_delay`. A wait longer
//! than `MAX_WAIT` is not waited: the call fails at once, saying so.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

/// The longest single wait; a rate limit that lasts longer fails the call.
pub const MAX_WAIT: Duration = Duration::from_secs(120);

/// What GitHub asks after a rate limit that names no time.
const UNTIMED_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// How often to try and how long to back off between tries.
#[derive(Debug, Clone)]
pub struct Retry {
    /// Tries in all, the first one included.
    pub attempts: u32,
    /// The backoff before the second try; doubled before each later one.
    pub first_delay: Duration,
}

impl Default for Retry {
    /// OpenStack's and the job API's: four tries, 0.5 s to 4 s apart.
    fn default() -> Retry {
        Retry {
            attempts: 4,
            first_delay: Duration::from_millis(500),
        }
    }
}

/// What to do after one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An answer to keep (a success, or an error that another try would not change).
    Accept,
    /// Try again after this wait.
    RetryAfter(Duration),
    /// Worth another try, but the tries are used up.
    Exhausted,
    /// Worth another try, but only after this wait, longer than `MAX_WAIT`.
    TooLong(Duration),
}

impl Retry {
    /// The backoff after try number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.first_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
    }

    /// The verdict on an answer to try number `attempt`, at `now`. `says_rate_limited`:
    /// the body says it is a rate limit (GitHub's secondary limits may carry no header).
    pub fn verdict(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        says_rate_limited: bool,
        attempt: u32,
        now: SystemTime,
    ) -> Verdict {
        let limited = matches!(status.as_u16(), 403 | 429);
        if !(limited || status.is_server_error()) {
            return Verdict::Accept;
        }
        let wait = if let Some(wait) = retry_after(headers, now) {
            wait
        } else if limited && header_u64(headers, "x-ratelimit-remaining") == Some(0) {
            let now = unix_seconds(now);
            let reset = header_u64(headers, "x-ratelimit-reset").unwrap_or(now + 60);
            Duration::from_secs(reset.saturating_sub(now) + 1)
        } else if limited && says_rate_limited {
            UNTIMED_RATE_LIMIT_WAIT.max(self.backoff(attempt))
        } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            self.backoff(attempt)
        } else {
            // A 403 that is no rate limit: a refusal.
            return Verdict::Accept;
        };
        self.limit(wait, attempt)
    }

    /// The verdict after try number `attempt` failed before any answer.
    pub fn verdict_on_transport_failure(&self, attempt: u32) -> Verdict {
        self.limit(self.backoff(attempt), attempt)
    }

    fn limit(&self, wait: Duration, attempt: u32) -> Verdict {
        if attempt >= self.attempts {
            Verdict::Exhausted
        } else if wait > MAX_WAIT {
            Verdict::TooLong(wait)
        } else {
            Verdict::RetryAfter(wait)
        }
    }
}

/// `Retry-After`: seconds, or an HTTP date (a date past is no wait).
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse() {
        return Some(Duration::from_secs(seconds));
    }
    let date = http_date(value)?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An HTTP date as RFC 9110 says to send it (IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`).
fn http_date(text: &str) -> Option<SystemTime> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_weekday, day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    let month = MONTHS.iter().position(|m| *m == month)? + 1;
    let (day, year): (u8, u16) = (day.parse().ok()?, year.parse().ok()?);
    humantime::parse_rfc3339_weak(&format!("{year:04}-{month:02}-{day:02} {time}")).ok()
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An answer the loop can judge.
pub trait Answer {
    fn status(&self) -> StatusCode;
    fn headers(&self) -> &HeaderMap;
    /// Whether the body says it is a rate limit; only answers read whole can tell.
    fn says_rate_limited(&self) -> bool {
        false
    }
}

impl Answer for reqwest::blocking::Response {
    fn status(&self) -> StatusCode {
        self.status()
    }
    fn headers(&self) -> &HeaderMap {
        self.headers()
    }
}

/// Why `send` gave up; each caller makes its own error of it.
#[derive(Debug)]
pub enum Failure<A> {
    /// Every try was answered with something worth another try; `last` is the last one.
    Exhausted { last: A, attempts: u32 },
    /// The answer to try number `attempts` asked for a wait longer than `MAX_WAIT`.
    TooLong {
        last: A,
        wait: Duration,
        attempts: u32,
    },
    /// No answer: `error` after `attempts` tries (one, when another would not help, as
    /// for a refused redirect).
    Transport {
        error: reqwest::Error,
        attempts: u32,
    },
}

/// Whether another try could get past a transport failure.
pub fn retryable(error: &reqwest::Error) -> bool {
    error.is_connect() || error.is_timeout() || error.is_request() || error.is_body()
}

/// A transport failure in words that name no URL (a URL may be a secret).
pub fn transport_reason(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else if error.is_redirect() {
        "refused a redirect"
    } else {
        "the connection failed"
    }
}

/// Tries `once` as `retry` allows, saying on stderr before each wait what `label` (the
/// call, in words that hold no secret) got and how long it waits.
pub fn send<A: Answer>(
    retry: &Retry,
    label: &str,
    mut once: impl FnMut() -> Result<A, reqwest::Error>,
) -> Result<A, Failure<A>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (got, wait) = match once() {
            Ok(answer) => {
                let verdict = retry.verdict(
                    answer.status(),
                    answer.headers(),
                    answer.says_rate_limited(),
                    attempt,
                    SystemTime::now(),
                );
                match verdict {
                    Verdict::Accept => return Ok(answer),
                    Verdict::Exhausted => {
                        return Err(Failure::Exhausted {
                            last: answer,
                            attempts: attempt,
                        })
                    }
                    Verdict::TooLong(wait) => {
                        return Err(Failure::TooLong {
                            last: answer,
                            wait,
                            attempts: attempt,
                        })
                    }
                    Verdict::RetryAfter(wait) => {
                        (format!("HTTP {}", answer.status().as_u16()), wait)
                    }
                }
            }
            Err(error) => match retry.verdict_on_transport_failure(attempt) {
                Verdict::RetryAfter(wait) if retryable(&error) => {
                    (transport_reason(&error).to_string(), wait)
                }
                _ => {
                    return Err(Failure::Transport {
                        error,
                        attempts: attempt,
                    })
                }
            },
        };
        eprintln!(
            "{label}: {got}, attempt {attempt} of {}; retrying in {} s",
            retry.attempts,
            wait.as_secs_f32()
        );
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loopback::{Answer as Reply, Server};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    const GITHUB: Retry = Retry {
        attempts: 5,
        first_delay: Duration::from_secs(1),
    };

    #[test]
    fn server_errors_back_off_and_client_errors_are_kept() {
        let (none, now) = (HeaderMap::new(), SystemTime::now());
        let verdict = |code, attempt| GITHUB.verdict(status(code), &none, false, attempt, now);
        let wait = |s| Verdict::RetryAfter(Duration::from_secs(s));
        assert_eq!(verdict(502, 1), wait(1));
        assert_eq!(verdict(503, 3), wait(4));
        assert_eq!(verdict(429, 2), wait(2));
        assert_eq!(verdict(500, 5), Verdict::Exhausted, "the fifth of five");
        for kept in [200, 201, 302, 400, 401, 403, 404, 409, 422] {
            assert_eq!(verdict(kept, 1), Verdict::Accept, "{kept}");
        }
        let transport = Retry::default();
        assert_eq!(
            transport.verdict_on_transport_failure(1),
            Verdict::RetryAfter(Duration::from_millis(500))
        );
        assert_eq!(
            transport.verdict_on_transport_failure(3),
            Verdict::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(
            transport.verdict_on_transport_failure(4),
            Verdict::Exhausted
        );
    }

    #[test]
    fn waits_follow_retry_after_and_githubs_rate_limit_headers_up_to_a_cap() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let verdict = |code, pairs: &[(&'static str, &str)], says, attempt| {
            GITHUB.verdict(status(code), &headers(pairs), says, attempt, now)
        };
        let wait = |s| Verdict::RetryAfter(Duration::from_secs(s));
        // Retry-After, in seconds or as a date, on a limit or a server error.
        assert_eq!(verdict(403, &[("retry-after", "7")], false, 1), wait(7));
        assert_eq!(verdict(503, &[("retry-after", "3")], false, 1), wait(3));
        // 1,700,000,000 is Tue, 14 Nov 2023 22:13:20 GMT.
        let date = [("retry-after", "Tue, 14 Nov 2023 22:13:50 GMT")];
        assert_eq!(verdict(429, &date, false, 1), wait(30));
        let past = [("retry-after", "Tue, 14 Nov 2023 22:00:00 GMT")];
        assert_eq!(verdict(503, &past, false, 1), wait(0));
        // A primary limit: until the reset, and a second more.
        let reset = [
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1700000030"),
        ];
        assert_eq!(verdict(403, &reset, true, 1), wait(31));
        assert_eq!(verdict(429, &reset, false, 2), wait(31));
        // A secondary limit that names no time: at least a minute.
        assert_eq!(verdict(403, &[], true, 1), wait(60));
        assert_eq!(verdict(429, &[], true, 1), wait(60));
        // Longer than the cap: not waited.
        let hour = [
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1700003600"),
        ];
        assert_eq!(
            verdict(403, &hour, false, 1),
            Verdict::TooLong(Duration::from_secs(3601))
        );
        assert_eq!(
            verdict(429, &[("retry-after", "121")], false, 1),
            Verdict::TooLong(Duration::from_secs(121))
        );
        assert_eq!(verdict(429, &[("retry-after", "120")], false, 1), wait(120));
        // A 403 with quota left, or no rate limit at all, is a refusal.
        let left = [("x-ratelimit-remaining", "4999")];
        assert_eq!(verdict(403, &left, false, 1), Verdict::Accept);
        // The tries run out before the cap is looked at.
        assert_eq!(verdict(403, &hour, false, 5), Verdict::Exhausted);
        // Headers on an answer that is no failure change nothing.
        assert_eq!(
            verdict(404, &[("retry-after", "1")], false, 1),
            Verdict::Accept
        );
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    }

    /// A service answering the statuses in turn, then 200.
    fn faltering(statuses: &'static [(u16, &'static str)]) -> Server {
        let count = AtomicUsize::new(0);
        Server::start("127.0.0.1", move |_| {
            match statuses.get(count.fetch_add(1, Ordering::SeqCst)) {
                Some((code, "")) => Reply::new(*code, "{}"),
                Some((code, retry_after)) => {
                    Reply::new(*code, "{}").header("Retry-After", retry_after)
                }
                None => Reply::new(200, "{}"),
            }
        })
    }

    fn quick(attempts: u32) -> Retry {
        Retry {
            attempts,
            first_delay: Duration::from_millis(10),
        }
    }

    #[test]
    fn the_loop_retries_until_an_answer_to_keep() {
        let server = faltering(&[(503, ""), (429, "0"), (502, "")]);
        let http = reqwest::blocking::Client::new();
        let answer = send(&quick(4), "GET thing", || http.get(&server.url).send()).unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(server.requests().len(), 4);

        let server = faltering(&[(404, "")]);
        let answer = send(&quick(4), "GET thing", || http.get(&server.url).send()).unwrap();
        assert_eq!(answer.status(), 404, "kept at once");
        assert_eq!(server.requests().len(), 1);
    }

    #[test]
    fn the_loop_gives_up_with_the_last_answer_or_the_transport_error() {
        let http = reqwest::blocking::Client::new();
        let server = faltering(&[(500, ""), (502, ""), (503, "")]);
        match send(&quick(2), "GET thing", || http.get(&server.url).send()) {
            Err(Failure::Exhausted { last, attempts: 2 }) => assert_eq!(last.status(), 502),
            other => panic!("{other:?}"),
        }
        let server = faltering(&[(503, "3600")]);
        match send(&quick(4), "GET thing", || http.get(&server.url).send()) {
            Err(Failure::TooLong { wait, .. }) => assert_eq!(wait, Duration::from_secs(3600)),
            other => panic!("{other:?}"),
        }
        assert_eq!(server.requests().len(), 1, "no second try");
        // Nothing listens on port 1: every try fails to connect.
        match send(&quick(3), "GET thing", || {
            http.get("http://127.0.0.1:1/").send()
        }) {
            Err(Failure::Transport { error, attempts: 3 }) => {
                assert_eq!(transport_reason(&error), "cannot connect")
            }
            other => panic!("{other:?}"),
        }
    }
}
