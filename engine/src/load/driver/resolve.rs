//! `driver_config.resolve: {HOST: IP}`: host names both drivers connect to at a given address
//! instead of asking DNS, like curl's `--resolve`. Virtual-hosted addressing needs it where no
//! wildcard DNS names `BUCKET.gateway`; so does a gateway reached by a name DNS does not know.

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Resolves the overridden names itself and every other name through the system (getaddrinfo).
#[derive(Clone)]
pub(crate) struct Resolver {
    /// Host (lowercase) → address, from the connection file, checked when it was resolved.
    overrides: Arc<Vec<(String, IpAddr)>>,
    /// The system's resolver, for names not overridden.
    system: GaiResolver,
}

impl Resolver {
    pub(crate) fn new(overrides: &[(String, IpAddr)]) -> Resolver {
        Resolver {
            overrides: Arc::new(
                overrides
                    .iter()
                    .map(|(h, ip)| (h.to_ascii_lowercase(), *ip))
                    .collect(),
            ),
            system: GaiResolver::new(),
        }
    }

    /// The overriding address of `host`, if it has one.
    fn lookup(&self, host: &str) -> Option<IpAddr> {
        self.overrides
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
            .map(|(_, ip)| *ip)
    }
}

type Addrs = std::vec::IntoIter<SocketAddr>;

impl tower_service::Service<Name> for Resolver {
    type Response = Addrs;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Addrs, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        // The port is set by the connector from the URL after resolving.
        if let Some(ip) = self.lookup(name.as_str()) {
            return Box::pin(std::future::ready(Ok(
                vec![SocketAddr::new(ip, 0)].into_iter()
            )));
        }
        let mut system = self.system.clone();
        Box::pin(async move {
            let addrs = system.call(name).await?;
            Ok(addrs.collect::<Vec<_>>().into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use tower_service::Service;

    #[tokio::test]
    async fn overridden_names_resolve_to_their_address_and_others_to_the_system() {
        let mut r = Resolver::new(&[(
            "Bucket.Gateway.Example".into(),
            IpAddr::from_str("127.0.0.7").unwrap(),
        )]);
        let got: Vec<SocketAddr> = r
            .call(Name::from_str("bucket.gateway.example").unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(got, vec!["127.0.0.7:0".parse().unwrap()]);
        // Not overridden: the system's answer (a literal address resolves to itself).
        let got: Vec<SocketAddr> = r
            .call(Name::from_str("127.0.0.1").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(
            got.iter().all(|a| a.ip() == IpAddr::from([127, 0, 0, 1])),
            "{got:?}"
        );
    }
}
