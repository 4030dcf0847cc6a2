//! Status words written once: [`word_enum!`] declares an enum whose variants each carry
//! the one word they are written as, and derives `as_str`, `Display` and serde from that
//! single table, so the JSON a daemon writes, the line a terminal shows and the value a
//! test compares can never drift apart (they once were three hand-written matches).

/// Declares a `Copy` enum of status words: `Variant => "word"` per line. The word is the
/// serde name (serialise and deserialise), [`Display`](std::fmt::Display) and `as_str`.
/// Extra derives (`Default`) and attributes go on the enum or variants as usual.
macro_rules! word_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $word)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            #[allow(dead_code)]
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word this status is written as (JSON, logs, the terminal).
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $word, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    word_enum! {
        /// A test status.
        enum Light {
            /// Go.
            Green => "green",
            /// Stop.
            Red => "RED",
        }
    }

    #[test]
    fn display_serde_and_as_str_give_the_same_word() {
        for &light in Light::ALL {
            let json = serde_json::to_string(&light).unwrap();
            assert_eq!(json, format!("\"{light}\""));
            assert_eq!(light.to_string(), light.as_str());
            let back: Light = serde_json::from_str(&json).unwrap();
            assert_eq!(back, light);
        }
        assert!(
            serde_json::from_str::<Light>("\"red\"").is_err(),
            "words are exact"
        );
    }
}
