//! Docker-style isolation between bridge networks (`"isolation": true`,
//! ours): routed traffic from one isolated bridge to another is dropped,
//! while each still reaches the outside.
//!
//! Table `inet cnirs-isolation`: the forward chain jumps by input
//! interface through a verdict map to the network's chain, which drops
//! packets leaving through any other isolated bridge. One element and one
//! chain per network, never per container.

use kernel::nft::{priority, Batch, ChainType, CmpOp, DataType, Element, Family, Field, Hook, Rule, Table, Value};
use kernel::Result;

const TABLE: &str = "cnirs-isolation";

/// Adds to `batch` what isolates `network` (on `bridge`) from every other
/// isolated network; rewriting it is harmless, so every ADD may.
pub fn ensure(batch: &mut Batch, network: &str, bridge: &str) -> Result<()> {
    let t = Table::new(Family::Inet, TABLE)?;
    let forward = t.base_chain("forward", Hook::Forward, ChainType::Filter, priority::FILTER)?;
    let by_input = t.vmap("iso-in", &[DataType::Ifname])?;
    let bridges = t.set("iso-bridges", &[DataType::Ifname])?;
    let chain = t.chain(format!("iso-{network}"))?;
    batch.add_table(&t).add_chain(&forward).add_set(&by_input).add_set(&bridges).add_chain(&chain);
    // replace_rules writes only what differs from the kernel's copy (no
    // flush: it would cost an RCU grace period on every ADD).
    batch.replace_rules(&forward, [Rule::new(&forward).vmap(&[Field::Iifname], &by_input)]);
    batch.replace_rules(
        &chain,
        [Rule::new(&chain)
            .cmp(Field::Oifname, CmpOp::Neq, Value::Ifname(bridge.to_string()))
            .in_set(&[Field::Oifname], &bridges)
            .counter()
            .drop()],
    );
    batch.add_element(&bridges, Element::new([Value::Ifname(bridge.to_string())]).comment(network));
    batch.add_element(
        &by_input,
        Element::new([Value::Ifname(bridge.to_string())]).verdict(chain.jump()).comment(network),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds() {
        let mut b = Batch::new();
        ensure(&mut b, "net-a", "br-a").unwrap();
        assert!(!b.is_empty());
    }
}
