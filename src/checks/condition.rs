// TEMPORARY shim until the real condition engine lands (overwritten by it).
use crate::observation::Value;
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Number { value: f64 },
    Text(String),
}
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    op: String,
    operand: Operand,
    text: String,
}
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConditionError(String);
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(String);
impl Condition {
    pub fn parse(t: &str) -> Result<Condition, ConditionError> {
        let t = t.trim();
        let op: String = t.chars().take_while(|c| "<>=!".contains(*c)).collect();
        let rest = t[op.len()..].trim();
        let operand = match rest.parse::<f64>() {
            Ok(v) => Operand::Number { value: v },
            Err(_) => {
                let (n, m) = rest.split_at(rest.len().saturating_sub(1));
                match (n.parse::<f64>(), m) {
                    (Ok(v), "m") => Operand::Number { value: v * 60.0 },
                    (Ok(v), "h") => Operand::Number { value: v * 3600.0 },
                    (Ok(v), "s") => Operand::Number { value: v },
                    _ => Operand::Text(rest.into()),
                }
            }
        };
        if op.is_empty() {
            return Err(ConditionError(format!("invalid condition {t:?}")));
        }
        Ok(Condition {
            op,
            operand,
            text: t.into(),
        })
    }
    pub fn operand(&self) -> &Operand {
        &self.operand
    }
    pub fn human(&self) -> String {
        self.text.clone()
    }
    pub fn tag_value(&self) -> String {
        let o = match self.op.as_str() {
            "<" => "lt",
            "<=" => "lte",
            ">" => "gt",
            ">=" => "gte",
            "==" => "eq",
            _ => "ne",
        };
        format!("{o}_{}", self.text[self.op.len()..].trim())
    }
    pub fn evaluate(&self, v: &Value) -> Result<bool, EvalError> {
        match (&self.operand, v) {
            (Operand::Text(t), Value::Text(s)) => Ok((t == s) == (self.op == "==")),
            (Operand::Number { value }, v) => {
                let x = v.as_number().ok_or(EvalError("type".into()))?;
                if x.is_nan() {
                    return Err(EvalError("not a number".into()));
                }
                Ok(match self.op.as_str() {
                    "<" => x < *value,
                    "<=" => x <= *value,
                    ">" => x > *value,
                    ">=" => x >= *value,
                    "==" => x == *value,
                    _ => x != *value,
                })
            }
            _ => Err(EvalError("type mismatch".into())),
        }
    }
}
