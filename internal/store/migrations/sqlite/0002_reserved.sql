-- Reserved: the token-revocation migration takes number 2. This placeholder
-- keeps the numbering without a gap until it lands; it changes nothing.
SELECT 1;
