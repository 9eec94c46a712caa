//! Carrying out the interpreter's `InvokeWebhook` effect: an HTTP POST of the Connect-shaped
//! event as JSON, bounded by the action's time limit (1-8 s), mapped to the
//! [`WebhookResult`] the interpreter expects. This is the one piece of I/O in the crate and lives
//! outside the interpreter; drivers call it and feed the result back with `step`.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::interpreter::WebhookResult;

/// Resolves a flow's function reference (`LambdaFunctionARN`) to a URL: a name registered here
/// (imported Connect flows carry Lambda ARNs), or an `http(s)://` URL used as is.
#[derive(Debug, Clone, Default)]
pub struct WebhookTargets {
    by_name: HashMap<String, String>,
}

impl WebhookTargets {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, name: &str, url: &str) {
        self.by_name.insert(name.to_string(), url.to_string());
    }

    pub fn resolve(&self, function: &str) -> Option<String> {
        if let Some(url) = self.by_name.get(function) {
            return Some(url.clone());
        }
        (function.starts_with("http://") || function.starts_with("https://"))
            .then(|| function.to_string())
    }
}

/// Posts `payload` to the function's URL and waits at most `timeout_ms`.
pub async fn invoke(
    client: &reqwest::Client,
    targets: &WebhookTargets,
    function: &str,
    payload: &Value,
    timeout_ms: i64,
) -> WebhookResult {
    let Some(url) = targets.resolve(function) else {
        return WebhookResult::Error(format!("no webhook URL for {function:?}"));
    };
    let timeout = Duration::from_millis(timeout_ms.clamp(1, 8_000) as u64);
    let call = async {
        let response = client
            .post(&url)
            .json(payload)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        response
            .json::<Value>()
            .await
            .map_err(|e| format!("response is not JSON: {e}"))
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => WebhookResult::Timeout,
        Ok(Ok(body)) => WebhookResult::Ok(body),
        Ok(Err(e)) => WebhookResult::Error(e),
    }
}
