//! fermyon:spin/variables@2.0.0 and wasi:config/store for guests, as Spin's factor-variables.

use crate::bindings::fermyon::spin::variables;
use crate::bindings::wasi::config::store as config;
use crate::state::InstanceState;
use crate::variables::VarError;

type Wr<T> = wasmtime::Result<T>;

impl InstanceState {
    fn variable(&self, name: &str) -> Result<String, VarError> {
        self.app.variables.get(&self.component.id, name)
    }
}

impl variables::Host for InstanceState {
    async fn get(&mut self, name: String) -> Wr<Result<String, variables::Error>> {
        Ok(self.variable(&name).map_err(|e| match e {
            VarError::InvalidName(m) => variables::Error::InvalidName(m),
            VarError::Undefined(m) => variables::Error::Undefined(m),
            VarError::Provider(m) => variables::Error::Provider(m),
        }))
    }
}

impl config::Host for InstanceState {
    async fn get(&mut self, key: String) -> Wr<Result<Option<String>, config::Error>> {
        Ok(match self.variable(&key) {
            Ok(v) => Ok(Some(v)),
            Err(VarError::Undefined(_) | VarError::InvalidName(_)) => Ok(None),
            Err(VarError::Provider(m)) => Err(config::Error::Upstream(m)),
        })
    }

    async fn get_all(&mut self) -> Wr<Result<Vec<(String, String)>, config::Error>> {
        Ok(Ok(self.app.variables.all(&self.component.id)))
    }
}
