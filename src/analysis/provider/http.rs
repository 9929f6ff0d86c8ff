//! The `http` provider: a number picked from a JSON answer by a path or a JSON pointer.

use super::*;

/// Read the URL once.
pub(super) async fn read(
    client: &crate::net::Client,
    spec: &HttpSpec,
    pointer: &str,
    timeout: Duration,
) -> Result<Value, String> {
    let max = spec.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    let (status, body) = get_text(client, &spec.url, &[], timeout, max).await?;
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}: {}", snippet(&body)));
    }
    let doc: Value = serde_json::from_str(&body)
        .map_err(|e| format!("the answer is not JSON ({e}): {}", snippet(&body)))?;
    Ok(json_value(&doc, pointer, &spec.path).to_json())
}

pub fn json_value(doc: &Value, pointer: &str, path: &str) -> Observed {
    match doc.pointer(pointer) {
        None | Some(Value::Null) => Observed::NoData(format!("nothing at `{path}`")),
        Some(Value::Number(n)) => Observed::number(n.as_f64().unwrap_or(f64::NAN)),
        Some(Value::Bool(b)) => Observed::Value(if *b { 1.0 } else { 0.0 }),
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(v) => Observed::number(v),
            Err(_) => Observed::Error(format!("`{path}` is \"{}\", not a number", snippet(s))),
        },
        Some(Value::Array(a)) if a.is_empty() => Observed::Empty,
        Some(Value::Array(a)) if a.len() == 1 => json_value(&a[0], "", path),
        Some(Value::Array(a)) => Observed::Multiple(a.len()),
        Some(Value::Object(_)) => Observed::Error(format!(
            "`{path}` is an object, not a number: name a field in it"
        )),
    }
}

/// `a.b[0].c` (or a JSON pointer `/a/b/0/c`) as a JSON pointer.
pub fn json_pointer(path: &str) -> Result<String, String> {
    let path = path.trim();
    if path.is_empty() || path == "/" {
        return Ok(String::new());
    }
    if path.starts_with('/') {
        return Ok(path.to_string());
    }
    let mut out = String::new();
    for part in path.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty() && rest.is_empty() {
            return Err(format!("path `{path}` has an empty step"));
        }
        if !key.is_empty() {
            out.push('/');
            out.push_str(&key.replace('~', "~0").replace('/', "~1"));
        }
        while let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("path `{path}`: `[` without `]`"))?;
            let idx: usize = r[..end]
                .parse()
                .map_err(|_| format!("path `{path}`: `[{}]` is not an index", &r[..end]))?;
            out.push_str(&format!("/{idx}"));
            rest = &r[end + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("path `{path}`: unexpected `{rest}`"));
        }
    }
    Ok(out)
}
