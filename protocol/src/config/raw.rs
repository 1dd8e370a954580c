//! The raw configuration tree: files merged in order, then environment overrides, read by key
//! path with typed, error-reporting getters.

use super::{err, ConfigError};
use crate::duration::parse_go_duration;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The raw tree: files merged, then environment overrides.
pub(super) struct Raw {
    pub(super) tree: Value,
}

impl Raw {
    pub(super) fn get(&self, key: &str) -> Option<&Value> {
        let mut v = &self.tree;
        for part in key.split('.') {
            v = v.get(part)?;
        }
        if v.is_null() {
            None
        } else {
            Some(v)
        }
    }

    pub(super) fn set(&mut self, key: &str, value: Value) {
        let mut v = &mut self.tree;
        for part in key.split('.') {
            if !v.is_object() {
                *v = Value::Object(Default::default());
            }
            let Value::Object(map) = v else { return };
            v = map.entry(part.to_string()).or_insert(Value::Null);
        }
        *v = value;
    }

    pub(super) fn str(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(err(key, "must be a string")),
        }
    }

    pub(super) fn int(&self, key: &str) -> Result<Option<i64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| err(key, "must be an integer")),
            Some(Value::String(s)) => {
                s.trim().parse().map(Some).map_err(|_| err(key, format!("must be an integer, got {s:?}")))
            }
            Some(_) => Err(err(key, "must be an integer")),
        }
    }

    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" | "" => Ok(Some(false)),
                _ => Err(err(key, format!("must be true or false, got {s:?}"))),
            },
            Some(_) => Err(err(key, "must be a boolean")),
        }
    }

    pub(super) fn list(&self, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| err(key, "must be a list of strings")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(Value::String(s)) => {
                Ok(Some(s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()))
            }
            Some(_) => Err(err(key, "must be a list of strings")),
        }
    }

    pub(super) fn duration(&self, key: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.str(key)? {
            None => Ok(default),
            Some(s) => parse_go_duration(s.trim())
                .ok_or_else(|| err(key, format!("must be a duration such as 1h or 30m, got {s:?}"))),
        }
    }
}

pub(super) fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let key = format!("--config {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| err(&key, e.to_string()))?;
    let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let v: Value = if is_json {
        serde_json::from_str(&text).map_err(|e| err(&key, e.to_string()))?
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| err(&key, e.to_string()))?
    };
    match v {
        Value::Object(_) => Ok(v),
        Value::Null => Ok(Value::Object(Default::default())),
        _ => Err(err(&key, "the file must hold a mapping of keys")),
    }
}

pub(super) fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}
