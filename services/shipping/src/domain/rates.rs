//! The fallback rate table: what a quote costs when the carrier cannot be
//! asked. Prices are by destination region (the CEP's first digit, counted
//! from a São Paulo origin) and weight band, deliberately a little above the
//! carrier's usual prices, so a fallback quote rarely undercharges.

use super::{CarrierService, Cep};

/// A price and a delivery time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub price_cents: i64,
    /// Working days.
    pub days: i32,
}

/// Upper bound (grams, inclusive) of each weight band, lightest first.
const BANDS: [i64; 6] = [300, 1_000, 2_000, 5_000, 10_000, 30_000];

/// PAC price (cents) per region (0..=9) and weight band.
const PAC_CENTS: [[i64; 6]; 10] = [
    // SP capital and metro: local
    [1_890, 2_290, 2_790, 3_790, 5_490, 9_990],
    // SP interior
    [2_190, 2_590, 3_190, 4_290, 6_190, 11_490],
    // RJ, ES
    [2_490, 2_990, 3_690, 4_990, 7_290, 13_490],
    // MG
    [2_490, 2_990, 3_690, 4_990, 7_290, 13_490],
    // BA, SE
    [3_290, 3_990, 4_990, 6_790, 9_990, 18_990],
    // PE, AL, PB, RN
    [3_590, 4_390, 5_490, 7_490, 10_990, 20_990],
    // CE, PI, MA, PA, AP, AM, RR, AC
    [3_990, 4_890, 6_190, 8_490, 12_490, 23_990],
    // DF, GO, TO, MT, MS, RO
    [3_290, 3_990, 4_990, 6_790, 9_990, 18_990],
    // PR, SC
    [2_490, 2_990, 3_690, 4_990, 7_290, 13_490],
    // RS
    [2_790, 3_390, 4_190, 5_690, 8_290, 15_490],
];

/// PAC delivery days per region.
const PAC_DAYS: [i32; 10] = [3, 5, 6, 6, 9, 10, 12, 8, 6, 7];

/// SEDEX costs this many times PAC (in percent)...
const SEDEX_PRICE_PERCENT: i64 = 180;
/// ...and takes this many days (per region).
const SEDEX_DAYS: [i32; 10] = [1, 2, 2, 2, 4, 4, 5, 3, 2, 3];

/// The fallback price and delivery time of a parcel of `weight_grams` to
/// `destination`. Weights past the heaviest band are priced as that band.
pub fn fallback_rate(destination: &Cep, service: CarrierService, weight_grams: i64) -> Rate {
    let region = usize::from(destination.region()).min(PAC_CENTS.len() - 1);
    let band = BANDS.iter().position(|&max| weight_grams <= max).unwrap_or(BANDS.len() - 1);
    let pac = PAC_CENTS[region][band];
    match service {
        CarrierService::Pac => Rate { price_cents: pac, days: PAC_DAYS[region] },
        // Rounded up to the next 10 cents, like the table's prices.
        CarrierService::Sedex => {
            Rate { price_cents: (pac * SEDEX_PRICE_PERCENT + 999) / 1_000 * 10, days: SEDEX_DAYS[region] }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cep(s: &str) -> Cep {
        Cep::parse(s).unwrap()
    }

    #[test]
    fn the_price_comes_from_the_region_and_the_weight_band() {
        let sp = cep("01310-100");
        assert_eq!(fallback_rate(&sp, CarrierService::Pac, 1), Rate { price_cents: 1_890, days: 3 });
        assert_eq!(fallback_rate(&sp, CarrierService::Pac, 300), Rate { price_cents: 1_890, days: 3 });
        assert_eq!(fallback_rate(&sp, CarrierService::Pac, 301), Rate { price_cents: 2_290, days: 3 });
        assert_eq!(fallback_rate(&cep("69000-000"), CarrierService::Pac, 30_000).price_cents, 23_990);
        assert_eq!(fallback_rate(&cep("90010-000"), CarrierService::Pac, 4_999), Rate { price_cents: 5_690, days: 7 });
    }

    #[test]
    fn sedex_is_dearer_and_faster_than_pac_everywhere() {
        for region in 0..10u8 {
            let dest = cep(&format!("{region}1000000"));
            for w in [100, 500, 1_500, 4_000, 9_000, 20_000] {
                let pac = fallback_rate(&dest, CarrierService::Pac, w);
                let sedex = fallback_rate(&dest, CarrierService::Sedex, w);
                assert!(sedex.price_cents > pac.price_cents, "region {region}, {w} g");
                assert!(sedex.days < pac.days, "region {region}");
                assert_eq!(sedex.price_cents % 10, 0);
            }
        }
        assert_eq!(fallback_rate(&cep("01310100"), CarrierService::Sedex, 300).price_cents, 3_410);
    }

    #[test]
    fn a_heavier_parcel_never_costs_less() {
        for region in 0..10u8 {
            let dest = cep(&format!("{region}2345678"));
            let mut last = 0;
            for w in (100..=30_000).step_by(100) {
                let p = fallback_rate(&dest, CarrierService::Pac, w).price_cents;
                assert!(p >= last, "region {region}, {w} g");
                last = p;
            }
        }
    }

    #[test]
    fn weights_past_the_table_use_its_heaviest_band() {
        let dest = cep("30130-000");
        assert_eq!(
            fallback_rate(&dest, CarrierService::Pac, 31_000),
            fallback_rate(&dest, CarrierService::Pac, 30_000)
        );
    }
}
