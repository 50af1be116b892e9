/// The named HTML entities known to CLIP's text cleanup (ftfy's `unescape_html` and Python's `html.unescape`, see
/// `HTMLUnescape`).
///
/// The named entities are the 252 of HTML 4 (with their HTML5 values, so `&lang;` is U+27E8), `&apos;`, `&TRADE;`
/// and the upper-case legacy aliases (`&AMP;`, `&COPY;`, `&GT;`, `&LT;`, `&QUOT;`, `&REG;`). The other ~2,000 HTML5
/// names (`&checkmark;`, `&HilbertSpace;`, …) are left as they are: they do not occur in labels or descriptions, and
/// the full table would be a 2,231-entry file for no observable gain. Generated with Python 3.11 from
/// `html.entities.html5` (values), `html.entities.name2codepoint` (names) and `ftfy.chardata.HTML_ENTITIES` (ftfy's
/// all-caps aliases such as `&EACUTE;` → "É").
enum HTMLEntities {
    /// Names that decode when followed by ";" (both unescapers), with their values as hex code points.
    private static let withSemicolon = """
        AElig:C6 AMP:26 Aacute:C1 Acirc:C2 Agrave:C0 Alpha:391 Aring:C5 Atilde:C3 Auml:C4 Beta:392 COPY:A9
        Ccedil:C7 Chi:3A7 Dagger:2021 Delta:394 ETH:D0 Eacute:C9 Ecirc:CA Egrave:C8 Epsilon:395 Eta:397
        Euml:CB GT:3E Gamma:393 Iacute:CD Icirc:CE Igrave:CC Iota:399 Iuml:CF Kappa:39A LT:3C Lambda:39B
        Mu:39C Ntilde:D1 Nu:39D OElig:152 Oacute:D3 Ocirc:D4 Ograve:D2 Omega:3A9 Omicron:39F Oslash:D8
        Otilde:D5 Ouml:D6 Phi:3A6 Pi:3A0 Prime:2033 Psi:3A8 QUOT:22 REG:AE Rho:3A1 Scaron:160 Sigma:3A3
        THORN:DE TRADE:2122 Tau:3A4 Theta:398 Uacute:DA Ucirc:DB Ugrave:D9 Upsilon:3A5 Uuml:DC Xi:39E
        Yacute:DD Yuml:178 Zeta:396 aacute:E1 acirc:E2 acute:B4 aelig:E6 agrave:E0 alefsym:2135 alpha:3B1
        amp:26 and:2227 ang:2220 apos:27 aring:E5 asymp:2248 atilde:E3 auml:E4 bdquo:201E beta:3B2 brvbar:A6
        bull:2022 cap:2229 ccedil:E7 cedil:B8 cent:A2 chi:3C7 circ:2C6 clubs:2663 cong:2245 copy:A9
        crarr:21B5 cup:222A curren:A4 dArr:21D3 dagger:2020 darr:2193 deg:B0 delta:3B4 diams:2666 divide:F7
        eacute:E9 ecirc:EA egrave:E8 empty:2205 emsp:2003 ensp:2002 epsilon:3B5 equiv:2261 eta:3B7 eth:F0
        euml:EB euro:20AC exist:2203 fnof:192 forall:2200 frac12:BD frac14:BC frac34:BE frasl:2044 gamma:3B3
        ge:2265 gt:3E hArr:21D4 harr:2194 hearts:2665 hellip:2026 iacute:ED icirc:EE iexcl:A1 igrave:EC
        image:2111 infin:221E int:222B iota:3B9 iquest:BF isin:2208 iuml:EF kappa:3BA lArr:21D0 lambda:3BB
        lang:27E8 laquo:AB larr:2190 lceil:2308 ldquo:201C le:2264 lfloor:230A lowast:2217 loz:25CA lrm:200E
        lsaquo:2039 lsquo:2018 lt:3C macr:AF mdash:2014 micro:B5 middot:B7 minus:2212 mu:3BC nabla:2207
        nbsp:A0 ndash:2013 ne:2260 ni:220B not:AC notin:2209 nsub:2284 ntilde:F1 nu:3BD oacute:F3 ocirc:F4
        oelig:153 ograve:F2 oline:203E omega:3C9 omicron:3BF oplus:2295 or:2228 ordf:AA ordm:BA oslash:F8
        otilde:F5 otimes:2297 ouml:F6 para:B6 part:2202 permil:2030 perp:22A5 phi:3C6 pi:3C0 piv:3D6
        plusmn:B1 pound:A3 prime:2032 prod:220F prop:221D psi:3C8 quot:22 rArr:21D2 radic:221A rang:27E9
        raquo:BB rarr:2192 rceil:2309 rdquo:201D real:211C reg:AE rfloor:230B rho:3C1 rlm:200F rsaquo:203A
        rsquo:2019 sbquo:201A scaron:161 sdot:22C5 sect:A7 shy:AD sigma:3C3 sigmaf:3C2 sim:223C spades:2660
        sub:2282 sube:2286 sum:2211 sup1:B9 sup2:B2 sup3:B3 sup:2283 supe:2287 szlig:DF tau:3C4 there4:2234
        theta:3B8 thetasym:3D1 thinsp:2009 thorn:FE tilde:2DC times:D7 trade:2122 uArr:21D1 uacute:FA
        uarr:2191 ucirc:FB ugrave:F9 uml:A8 upsih:3D2 upsilon:3C5 uuml:FC weierp:2118 xi:3BE yacute:FD
        yen:A5 yuml:FF zeta:3B6 zwj:200D zwnj:200C
        """

    /// Names Python's `html.unescape` also decodes without the ";" (`&amp`, `&copy2020` → "©2020").
    private static let legacyNames = """
        AElig AMP Aacute Acirc Agrave Aring Atilde Auml COPY Ccedil ETH Eacute Ecirc Egrave Euml GT Iacute
        Icirc Igrave Iuml LT Ntilde Oacute Ocirc Ograve Oslash Otilde Ouml QUOT REG THORN Uacute Ucirc
        Ugrave Uuml Yacute aacute acirc acute aelig agrave amp aring atilde auml brvbar ccedil cedil cent
        copy curren deg divide eacute ecirc egrave eth euml frac12 frac14 frac34 gt iacute icirc iexcl
        igrave iquest iuml laquo lt macr micro middot nbsp not ntilde oacute ocirc ograve ordf ordm oslash
        otilde ouml para plusmn pound quot raquo reg sect shy sup1 sup2 sup3 szlig thorn times uacute ucirc
        ugrave uml uuml yacute yen yuml
        """

    /// ftfy's extra all-caps aliases of lower-case names (`&EACUTE;` → "É", `&SZLIG;` → "SS"); ftfy only.
    private static let ftfyUppercase = """
        AACUTE:C1 ACIRC:C2 ACUTE:B4 AELIG:C6 AGRAVE:C0 ALEFSYM:2135 ALPHA:391 AND:2227 ANG:2220 APOS:27
        ARING:C5 ASYMP:2248 ATILDE:C3 AUML:C4 BDQUO:201E BETA:392 BRVBAR:A6 BULL:2022 CAP:2229 CCEDIL:C7
        CEDIL:B8 CENT:A2 CHI:3A7 CIRC:2C6 CLUBS:2663 CONG:2245 CRARR:21B5 CUP:222A CURREN:A4 DAGGER:2020
        DARR:2193 DEG:B0 DELTA:394 DIAMS:2666 DIVIDE:F7 EACUTE:C9 ECIRC:CA EGRAVE:C8 EMPTY:2205 EMSP:2003
        ENSP:2002 EPSILON:395 EQUIV:2261 ETA:397 EUML:CB EURO:20AC EXIST:2203 FNOF:191 FORALL:2200 FRAC12:BD
        FRAC14:BC FRAC34:BE FRASL:2044 GAMMA:393 GE:2265 HARR:2194 HEARTS:2665 HELLIP:2026 IACUTE:CD
        ICIRC:CE IEXCL:A1 IGRAVE:CC IMAGE:2111 INFIN:221E INT:222B IOTA:399 IQUEST:BF ISIN:2208 IUML:CF
        KAPPA:39A LAMBDA:39B LANG:27E8 LAQUO:AB LARR:2190 LCEIL:2308 LDQUO:201C LE:2264 LFLOOR:230A
        LOWAST:2217 LOZ:25CA LRM:200E LSAQUO:2039 LSQUO:2018 MACR:AF MDASH:2014 MICRO:39C MIDDOT:B7
        MINUS:2212 MU:39C NABLA:2207 NBSP:A0 NDASH:2013 NE:2260 NI:220B NOT:AC NOTIN:2209 NSUB:2284
        NTILDE:D1 NU:39D OACUTE:D3 OCIRC:D4 OELIG:152 OGRAVE:D2 OLINE:203E OMEGA:3A9 OMICRON:39F OPLUS:2295
        OR:2228 ORDF:AA ORDM:BA OSLASH:D8 OTILDE:D5 OTIMES:2297 OUML:D6 PARA:B6 PART:2202 PERMIL:2030
        PERP:22A5 PHI:3A6 PI:3A0 PIV:3A0 PLUSMN:B1 POUND:A3 PRIME:2032 PROD:220F PROP:221D PSI:3A8
        RADIC:221A RANG:27E9 RAQUO:BB RARR:2192 RCEIL:2309 RDQUO:201D REAL:211C RFLOOR:230B RHO:3A1 RLM:200F
        RSAQUO:203A RSQUO:2019 SBQUO:201A SCARON:160 SDOT:22C5 SECT:A7 SHY:AD SIGMA:3A3 SIGMAF:3A3 SIM:223C
        SPADES:2660 SUB:2282 SUBE:2286 SUM:2211 SUP:2283 SUP1:B9 SUP2:B2 SUP3:B3 SUPE:2287 SZLIG:53,53
        TAU:3A4 THERE4:2234 THETA:398 THETASYM:398 THINSP:2009 TILDE:2DC TIMES:D7 UACUTE:DA UARR:2191
        UCIRC:DB UGRAVE:D9 UML:A8 UPSIH:3D2 UPSILON:3A5 UUML:DC WEIERP:2118 XI:39E YACUTE:DD YEN:A5 YUML:178
        ZETA:396 ZWJ:200D ZWNJ:200C
        """

    /// Entities `html.unescape` decodes when written with ";", keyed by name without "&" and ";".
    static let named: [String: [Unicode.Scalar]] = parse(withSemicolon)
    /// Entities `html.unescape` decodes without ";" (the HTML5 legacy set), keyed by name.
    static let legacy: [String: [Unicode.Scalar]] = {
        var table: [String: [Unicode.Scalar]] = [:]
        for name in legacyNames.split(whereSeparator: \.isWhitespace) {
            table[String(name)] = named[String(name)]
        }
        return table
    }()
    /// Entities ftfy's `unescape_html` decodes (always with ";").
    static let ftfy: [String: [Unicode.Scalar]] = named.merging(parse(ftfyUppercase)) { old, _ in old }

    private static func parse(_ table: String) -> [String: [Unicode.Scalar]] {
        var result: [String: [Unicode.Scalar]] = [:]
        for entry in table.split(whereSeparator: \.isWhitespace) {
            let parts = entry.split(separator: ":")
            let scalars = parts[1].split(separator: ",").map { Unicode.Scalar(UInt32($0, radix: 16)!)! }
            result[String(parts[0])] = scalars
        }
        return result
    }
}
