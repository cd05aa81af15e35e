"""Word lists and regex sources used by :mod:`routing.intent`.

Everything here is plain data (strings) so it can be read and extended without
touching the scoring logic.  Patterns are written against *folded* text:
lower-cased, Latin accents stripped (``é`` -> ``e``), curly quotes made
straight.  CJK / Cyrillic text is left as is.

Conventions: every pattern is a regex *fragment*; :mod:`routing.intent`
wraps them in word boundaries where that makes sense and compiles them once at
import time.
"""

from __future__ import annotations

# ---------------------------------------------------------------------------
# Shared vocabulary
# ---------------------------------------------------------------------------

CURRENCIES = (
    r"usd|eur|gbp|jpy|cny|rmb|inr|brl|mxn|ars|cad|aud|chf|rub|try|krw|sek|nok|dkk|pln|zar"
    r"|dollars?|euros?|yen|yuan|pesos?|reais|real|rupees?|rubles?|roubles?|francs?|pounds? sterling"
    r"|bitcoin|btc|eth|ether|ethereum|dolar|dolares|dollar us|libras?"
)

CRYPTO = r"bitcoin|btc|ethereum|eth|solana|sol|dogecoin|doge|xrp|cardano|crypto(?:currenc(?:y|ies))?|usdt|tether|bnb|shib"

# Words that make a "how old is / when was ..." style question historical.
STABLE_THINGS = (
    r"earth|the earth|universe|the universe|sun|the sun|moon|the moon|galaxy|milky way|solar system"
    r"|pyramids?|the pyramids|dinosaurs?|eiffel tower|colosseum|stonehenge|great wall|bible|koran|quran"
    r"|christianity|islam|buddhism|judaism|hinduism|humanity|humans|homo sapiens|life on earth|oceans?|mountains?"
    r"|rome|the roman empire|egypt|china|india|greece|english|latin|language|the internet|the wheel|writing"
)

# ---------------------------------------------------------------------------
# WEB: explicit search / citation requests
# ---------------------------------------------------------------------------

SEARCH = [
    r"(?<!binary )(?<!linear )(?<!depth-first )(?<!breadth-first )\bsearch (?:for|the (?:web|internet|net)|online|up|google|about|news)\b",
    r"^search\b",
    r"\bgoogle (?:it|for|this|that|the|what|who|when|how|if|whether)\b",
    r"^google\b",
    r"\blook (?:it |this |that |them )?up\b(?! table)",
    r"\blookup (?:the|if|whether|what|who)\b",
    r"\bcheck (?:online|the (?:web|internet|news))\b",
    r"\b(?:cite|citing) (?:your |the |some |any )?(?:sources?|references|studies|papers|them|it)\b",
    r"\bcitations?\b",
    r"\bwith (?:sources|citations|references|links)\b",
    r"\b(?:give|send|show|provide|list|share|include) (?:me )?(?:some |any |the |a few )?(?:sources|links|references|urls)\b",
    r"\bfind (?:me )?(?:some |any |a few |the |recent |good |\d+ )*(?:(?:peer[- ]reviewed|scientific|academic|recent|news|credible|reliable) )*(?:sources|articles|papers|studies|links|reviews|news|websites|sites)\b",
    r"\b(?:on|from) the (?:web|internet)\b",
    r"\bbrowse\b",
    r"\bsources\?\s*$",
    r"\bbusca(?:r|me)? (?:en (?:internet|google|la web)|noticias|informacion)\b",
    r"\bpesquis(?:a|e|ar) (?:na internet|no google|sobre)\b",
    r"\b(?:cherche|recherche)(?:r)? (?:sur (?:internet|le web|google)|des (?:sources|articles))\b",
    r"\b(?:such(?:e)?|recherchiere) (?:im internet|online|nach quellen)\b",
    r"\bcerca (?:su internet|online|su google)\b",
    r"\bcon fuentes\b|\bavec (?:des )?sources\b|\bmit quellen\b|\bcom fontes\b",
]

# ---------------------------------------------------------------------------
# WEB: time words.  STRONG = by itself says "as of now"; WEAK needs company.
# ---------------------------------------------------------------------------

TEMPORAL_STRONG = [
    # english
    r"\blatest\b", r"\bnewest\b", r"\bmost recent\b", r"\brecent(?:ly)?\b", r"\btoday'?s?\b", r"\btonight'?s?\b",
    r"\btomorrow'?s?\b", r"\btmrw?\b", r"\btmr\b", r"\byesterday'?s?\b", r"\blast night'?s?\b",
    r"\bthis (?:week|weekend|month|year|season|morning|afternoon|evening|quarter)'?s?\b",
    r"\bnext (?:week|weekend|month|year|season|monday|tuesday|wednesday|thursday|friday|saturday|sunday|game|match|race|episode|election|launch)\b",
    r"\b(?:on|for|this|by|until) (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b",
    r"\bright now\b", r"\brn\b", r"\batm\b", r"\bat the moment\b", r"\bcurrently\b", r"\bas of (?:now|today|this)\b",
    r"\bthese days\b", r"\bnowadays\b", r"\bbreaking\b", r"\bupcoming\b", r"\bjust (?:announced|released|dropped|happened|came out)\b",
    r"\bso far this (?:year|season|month|week)\b", r"\blive (?:score|scores|stream|updates?|results?|coverage)\b",
    r"\breal[- ]time\b", r"\bup to date\b", r"\bup-to-date\b", r"\bthis year'?s\b",
    r"\bgoing (?:up|down)\b", r"\b(?:crashing|skyrocketing|surging|tanking|plunging|soaring)\b",
    # spanish / portuguese
    r"\bhoy\b", r"\bmanana\b", r"\bayer\b", r"\bahora mismo\b", r"\bactualmente\b", r"\bultim[oa]s?\b",
    r"\brecientes?\b", r"\besta semana\b", r"\beste (?:fin de semana|ano|mes)\b", r"\bhoje\b", r"\bamanha\b",
    r"\bontem\b", r"\batualmente\b", r"\bneste (?:momento|fim de semana)\b", r"\bagora mesmo\b",
    # french
    r"\baujourd'?hui\b", r"\bdemain\b", r"\bhier\b", r"\bactuellement\b", r"\ben ce moment\b",
    r"\bdernier(?:e|s|es)?\b", r"\bcette (?:semaine|annee)\b", r"\bce (?:week-?end|soir|mois)\b", r"\bcet(?:te)? (?:apres-midi|annee)\b",
    # german
    r"\bheute\b", r"\bgestern\b", r"\bmorgen\b", r"\bjetzt\b", r"\baktuell(?:e[nmrs]?)?\b", r"\bneueste[nmrs]?\b",
    r"\bdiese[nms]? (?:woche|wochenende|jahr|monat)\b", r"\bderzeit\b", r"\bmomentan\b", r"\bzurzeit\b",
    # italian / dutch
    r"\boggi\b", r"\bdomani\b", r"\bieri\b", r"\battualmente\b", r"\bquesta settimana\b", r"\bvandaag\b", r"\bgisteren\b",
    # cyrillic / cjk / others (no word boundaries for CJK)
    r"сегодня", r"завтра", r"вчера", r"сейчас", r"последни[ехй]", r"актуальн",
    r"今天", r"明天", r"昨天", r"现在", r"最新", r"目前", r"最近", r"今年", r"本周",
    r"今日", r"明日", r"昨日", r"現在", r"今週",
    r"오늘", r"내일", r"어제", r"지금", r"최신", r"현재",
    r"\bbugun\b", r"\bsimdi\b", r"आज", r"اليوم", r"الآن", r"حاليا", r"الأخيرة", r"أحدث", r"अभी", r"ताज़ा",
]

TEMPORAL_WEAK = [
    r"\bnow\b", r"\bcurrent\b(?! (?:in|through|flow|density|source|divider|law|electricity|affairs class)\b)",
    r"\bthis (?:time|summer|winter|spring|fall|autumn)\b", r"\bahora\b", r"\bagora\b", r"\bmaintenant\b",
    r"\badesso\b", r"\bnew\b", r"\bnuev[oa]s?\b", r"\bnouve(?:au|lle)s?\b", r"\bneue[nmrs]?\b", r"\bnov[oa]s?\b",
    r"\banymore\b", r"\bthe moment\b",
]

# ---------------------------------------------------------------------------
# WEB: things whose value changes over time.  (pattern, weight)
# ---------------------------------------------------------------------------

VOLATILE = [
    # prices / money
    (r"\bprices?\b(?! (?:elasticity|discrimination|ceilings?|floors?|index|theory|mechanism|signals?|wars?|gouging|skimming|strateg\w+|points?|controls?|levels?|takers?|makers?))", 2.0),
    (r"\bpreci(?:o|os)\b|\bprix\b|\bpreis(?:e)?\b|\bpreco\b|\bprezz[oi]\b|\bцен[аыу]\b|价格|价钱|股价|値段|価格|株価|가격|سعر|أسعار|कीमत|दाम", 2.0),
    (r"\bhow much (?:is|are|does|do|would|will|did) (?:a |an |the |one |1 )?[\w .'-]{0,40}?(?:cost|go for|going for|sell for|worth)\b", 2.0),
    (r"\bhow much (?:is|are) (?:a |an |the |one |1 )?[a-z][\w .'-]{1,30}\??$", 1.5),
    (r"\b(?:cuanto|quanto) (?:cuesta|cuestan|vale|valen|custa|custam|costa|esta|está)\b|\bcombien (?:coute|coutent|vaut)\b|\b(?:wie ?viel|was) kostet\b|\bсколько стоит\b|多少钱|いくら", 2.0),
    (r"\bthe (?:last|latest|most recent|previous) (?:game|match|race|grand prix|gp|election|episode|season|world cup|super bowl|final|finals|fight|tournament|olympics|debate|earnings|quarter|update|release|version|poll|jobs report)\b|\bresults? (?:of|for|from) (?:the|last|this|today)\b", 2.0),
    (r"\b(?:gallon|litre|liter|barrel|tank) of (?:gas|petrol|diesel|fuel|oil|milk|eggs)\b|\b(?:gas|petrol|diesel|fuel) (?:cost|costs)\b", 1.0),
    (r"\bgoing rate\b|\bmarket (?:value|rate)\b|\bresale value\b|\btrade-?in value\b|\bhow much (?:is|are) (?:my |a |an |the )?[\w .'-]{1,40}? worth\b|\bworth (?:now|today|these days)\b|\bblue book value\b", 2.0),
    (r"\bcost of (?:a |an |the )?(?:living|gas|fuel|rent|flights?|tickets?|eggs|groceries|housing)\b", 1.5),
    (r"\bexchange rates?\b|\bconversion rate\b|\btipo de cambio\b|\btaux de change\b|\bwechselkurs\b|\bcotacao\b|\bcotizacion\b|\bcambio del? (?:dolar|euro)\b|\bкурс\b|汇率|為替", 2.0),
    (r"\b\d[\d.,]*\s*(?:" + CURRENCIES + r")\s+(?:to|in|into|a|en|para|em|zu|in)\s+(?:" + CURRENCIES + r")\b", 2.0),
    (r"\b(?:" + CURRENCIES + r")\s*(?:to|vs\.?|versus|against|/|a|en|para)\s*(?:" + CURRENCIES + r")\b", 1.5),
    (r"\bis the (?:euro|dollar|pound|yen|peso|real|rupee) (?:up|down|strong|weak)", 2.0),
    (r"\b(?:" + CRYPTO + r")\b", 1.0),
    (r"\b(?:stock|stocks|shares?)\b(?! (?:market|photos?|images?|footage|pot|cube|options? (?:plan|definition)))(?<!chicken stock)(?<!beef stock)(?<!vegetable stock)(?<!fish stock)(?<!bone stock)", 2.0),
    (r"\bstock market\b|\bthe market\b|\bwall street\b", 1.0),
    (r"\b(?:housing|real estate|job|labou?r|rental|property|crypto|bond|oil|gold) market\b|\bstate of the (?:economy|market|race|war)\b|\bthe economy\b", 1.5),
    (r"\bwho(?:'s| is| are|s) (?:performing|playing|headlining|hosting|speaking|starring|running|nominated|in the lead)\b|\bwho will (?:perform|play|host|headline)\b", 2.0),
    (r"\b(?:fees?|fares?|tuition|admission|entrance|ticket prices?|rent|salary|salaries|wages?|premiums?)\b", 1.0),
    (r"\bhow much (?:is|are|does|do) (?:a |an |the )?[\w .'-]{1,50}?\b(?:fee|fare|tuition|admission|ticket|rent|subscription|membership|pass|visa|toll)s?\b", 1.5),
    (r"\b(?:share price|stock price|market cap|ticker|nasdaq|dow jones|s&p(?: ?500)?|nyse|ftse|nikkei|earnings|ipo|dividends?)\b", 2.0),
    (r"\b(?:interest|mortgage|inflation|unemployment|fed|savings|cd|prime|repo|lending|base) rates?\b", 1.5),
    (r"\b(?:rate (?:cut|hike|decision)s?|cut(?:s|ting)? (?:interest )?rates|rais(?:e|es|ed|ing) (?:interest )?rates|hike(?:s|d)? rates)\b", 2.0),
    (r"\b(?:the fed|federal reserve|ecb|bank of (?:england|canada|japan))\b", 1.0),
    (r"\b(?:gas|petrol|fuel|oil|gold|silver|egg|diesel) prices?\b|\bprice of (?:gas|petrol|oil|gold|silver|eggs|diesel)\b|\bprix de l'?essence\b", 2.0),
    (r"\binflation\b", 0.5),
    # weather
    (r"\bweather\b|\bforecast\b|\bclima\b|\bpronostico\b|\bprevisao do tempo\b|\bm[e]t[e]o\b|\bwetter\b|\bweer\b|\bпогод|天气|天気|날씨|طقس|मौसम|\bhava durumu\b", 2.0),
    (r"\b(?:que|qué) tiempo (?:hace|hara|va a hacer)\b|\bel tiempo (?:en|hoy|manana|para)\b|\bquel temps\b|\bche tempo\b|\bcomo (?:esta|vai estar) o tempo\b", 2.0),
    (r"\btemperature (?:in|at|outside|today|tomorrow|now|tonight)\b|\b(?:will|is) it (?:rain|snow|be (?:hot|cold|sunny|windy))\b|\b(?:rain|snow|storm)(?:ing)? (?:today|tomorrow|tonight|this)\b|\bhumidity\b|\buv index\b|\bair quality\b|\bpollen\b", 2.0),
    # sport
    (r"\b(?:scores?|scoreline|standings|fixtures|league table|box score|highlights|line-?ups?|playoffs?|transfer news|tabla de posiciones|classement)\b(?<!credit score)(?<!sat score)(?<!act score)(?<!z score)(?<!z-score)(?<!f1 score)(?<!test score)(?<!iq score)(?<!bleu score)", 2.0),
    (r"\bwho (?:won|win|wins|is winning|'s winning|s winning|will win|is going to win|is favou?red|are the favou?rites)\b", 2.0),
    (r"\b(?:favou?red|expected|predicted|projected|tipped) to win\b|\bodds (?:of|for|on)\b|\bbetting odds\b", 2.0),
    (r"\bwho(?:'s| is|s)? (?:leading|ahead|top of|first in|in first)\b|\bwho leads\b|\btop of the (?:table|league|standings)\b|\bin first place\b", 2.0),
    (r"\b(?:premier league|la liga|serie a|bundesliga|ligue 1|champions league|nba|nfl|mlb|nhl|mls|f1|formula 1|motogp|ufc|atp|wta|ipl)\b", 0.5),
    (r"\bsold out\b|\bin stock\b|\bback in stock\b|\bavailability\b|\b(?:still )?available (?:now|today|tonight|for (?:this|next|mon|tues|wednes|thurs|fri|satur|sun))", 2.0),
    (r"\bhow did (?:the )?[\w .'-]{2,30} (?:do|play|perform|finish)\b", 2.0),
    (r"\bwie steht(?:'s| es)\b|\bquien gano\b|\bqui a gagne\b|\bwer hat (?:\w+ )*gewonnen\b|\bquem ganhou\b|\bchi ha vinto\b|\bкто выиграл\b", 2.0),
    (r"\b(?:resultados?|marcador|partido|jogo|placar|resultats?|spielstand|ergebnis(?:se)?|spiel|partita|risultat[oi]|матч|счет)\b|比分|比赛|試合", 1.0),
    (r"\b(?:vs\.?|versus|v\.|gegen|contra|contre)\b", 0.5),
    (r"\b(?:game|match|race|fight|bout|grand prix|gp)\b", 0.5),
    # politics / people in office
    (r"\b(?:elections?|polls?|polling|primaries|ballots?|vote count|wahl(?:en)?|elecciones|eleicoes|elezioni|выбор[ыа]|选举)\b", 1.5),
    (r"\b(?:who(?:'s| is|s)|who are|quien es|qui est|wer ist|quem e|chi e|кто)\s+(?:the |el |la |le |der |die |o |a |il |l')?(?:current |new |actual |actuel(?:le)? |aktuelle |atual |attuale |sitting |reigning )?(?:ceo|president|prime minister|pm|chancellor|king|queen|pope|monarch|leader|head coach|coach|manager|captain|mayor|governor|senators?|chairman|chair|secretary of|minister|speaker|champion|champions|richest|best player|number one|top scorer|presidente|primer ministro|president[e]?|premier ministre|prasident|kanzler|bundeskanzler|primeiro-ministro|primo ministro|президент|owner of|head of)\b", 2.0),
    (r"\b(?:ceo|president|prime minister|chancellor|governor|mayor|owner|coach) of\b", 1.0),
    (r"\bwho (?:runs|owns|leads|coaches|manages)\b", 1.5),
    # people facts that change
    (r"\bhow old is (?!(?:" + STABLE_THINGS + r")\b)", 2.0),
    (r"\b(?:net worth|married to|dating|divorced|pregnant|still alive|alive\?|passed away|subscribers|followers|richest)\b", 2.0),
    # releases / versions / products
    (r"\b(?:latest|newest|current|most recent|new|next|upcoming)\s+(?:\w+\s+){0,3}?(?:version|release|update|model|iphone|ios|android|patch|season|episode|album|single|song|movie|film|book|game|trailer|console|phone|chip|gpu|car|model|series)\b", 2.0),
    (r"\b(?:release date|coming out|come out|comes out|be released|get released|gets released|premieres?|drops?|launch(?:es|ing)? date|out yet|released yet|announced yet|available yet)\b", 2.0),
    (r"\b(?:announced|unveiled|launched|released)\b", 1.0),
    (r"\bwhen(?:'s| is| are| does| do| will)\s+(?:the\s+)?next\b|\bwhen is the\b.{0,40}\b(?:coming|happening|starting|scheduled)\b", 2.0),
    # live status / local info
    (r"\bis [\w.' -]{2,30} down\b|\bdown for (?:everyone|everybody|me)\b|\boutages?\b|\bserver status\b", 2.0),
    (r"\b(?:flight|train|bus|order|package|parcel|shipment|delivery)\b[\w -]{0,12}\bstatus\b|\bstatus of (?:my|the|flight)\b|\b(?:delayed|cancell?ed) (?:flights?|trains?)\b", 2.0),
    (r"\b(?:cheap|cheapest|direct)? ?flights? (?:from|to)\b|\bhotels? (?:in|near)\b.{0,30}\b(?:available|tonight|deal|price)", 1.5),
    (r"\bnear me\b|\bnearby\b|\bopen now\b|\bopening hours\b|\bopening times\b|\bclosing time\b|\bshowtimes\b|\bhours of operation\b|\bwhat time does\b.{0,40}\b(?:open|close)\b|\bwhen (?:does|do|is|will) [\w.' -]{2,40} (?:open|close|opening|closing)\b|\bis [\w.' -]{2,30} (?:open|closed)\b|\b(?:still )?open (?:today|tonight|tomorrow|on (?:sun|satur|mon)day)", 2.0),
    (r"\bplaying (?:at|in|near)\b|\bwhat'?s playing\b|\bin theaters\b|\bin cinemas\b|\bon (?:netflix|hulu|disney\+?|hbo|prime)\b", 1.5),
    (r"\bconcerts?\b|\bevents? (?:in|near|this)\b|\bthings to do (?:this|today|tonight|in \w+ this)\b|\btickets? (?:for|to)\b|\btours? dates?\b", 1.5),
    (r"\b(?:traffic|backed up|road closures?|accident on|gridlock)\b", 2.0),
    (r"\b(?:is|are) (?:there )?(?:any )?(?:travel )?(?:restrictions|warnings|advisories)\b|\btravel (?:advisory|restrictions|warnings?)\b", 1.5),
    # demographics / rankings / trends
    (r"\bpopulation\b|\bhow many people live in\b|\bgdp (?:of|in)\b", 1.5),
    (r"\b(?:trending|viral|box office|billboard|top charts|best ?sellers?|most streamed|number one song)\b", 2.0),
    (r"\b(?:world record|record holder|rankings?|ranked|leaderboard)\b", 1.0),
    (r"\bwhat (?:are|is) (?:people|everyone|critics|reviewers) saying\b|\breviews?\b", 1.0),
    # news / events
    (r"\bnews\b|\bheadlines\b|\bnoticias\b|\bnouvelles\b|\bactualites\b|\bnachrichten\b|\bnotizie\b|\bnoticias\b|\bновост|新闻|ニュース|뉴스|أخبار|खबर|समाचार", 2.0),
    (r"\b(?:any )?(?:updates?|word) (?:on|about|regarding)\b|\bwhat(?:'s| is|s| are)? (?:going on|happening|the latest|new) (?:with|in|on|at|around)\b|\bque (?:esta|está) pasando\b|\bqu'?est-ce qui se passe\b|\bwas (?:ist|passiert) (?:gerade )?(?:los )?in\b|\bo que (?:esta|está) acontecendo\b|\blatest on\b|\bwhat happened (?:today|yesterday|last night|this week|with)\b|\bany news\b", 2.0),
    (r"\b(?:hurricane|earthquake|wildfire|flood(?:ing|s)?|tornado|storm|erupting|eruption|outbreak|ceasefire|strike|protests?|lawsuit|trial|verdict|scandal|recalls?|war in|invasion|shooting|layoffs)\b", 1.0),
    (r"\b(?:are|is) there (?:any )?(?:new )?(?:recalls?|updates?|news|delays?|outages?|strikes?|sales|deals|discounts|tickets|openings|warnings|alerts|closures)\b", 2.0),
    (r"\b(?:can|could) you (?:please )?check (?:if|whether|for|what|when|how|on)\b|^(?:pls |please )?check (?:if|whether|for|on)\b", 1.5),
    (r"\bdid [\w .'-]{2,40} (?:announce|release|drop|cut|raise|resign|die|sign|pass|get (?:fired|elected|arrested))\b", 1.5),
    (r"\bdid [\w .'-]{2,40} (?:win|lose|beat|qualify|advance)\b", 2.0),
    (r"\bhow(?:'s| is| are|s) (?:the )?[\w&.' -]{1,30}? doing\b", 1.5),
    (r"\bdeath toll\b|\bcasualties\b|\bhow many (?:people )?(?:have )?(?:died|been killed|been injured|dead|injured|missing)\b|\bhow many (?:cases|deaths)\b", 1.5),
    (r"\bminimum wage\b|\btax brackets?\b|\b(?:sales|income|vat|property|capital gains) tax rates?\b|\bis [\w ]{2,20} legal in\b|\bvisa requirements?\b|\bentry requirements?\b", 2.0),
    (r"\bwas gibt(?:'s| es) neues\b|\bque hay de nuevo\b|\bquoi de neuf\b|\bo que ha de novo\b|\bwhat'?s new (?:with|at|in|on|from|about)\b", 2.0),
    (r"\bis [\w .'-]{2,40} still\b|\bare [\w .'-]{2,40} still\b|\bstill (?:open|alive|available|on sale|in business|running|the (?:ceo|president|law|case|best|champion))\b", 2.0),
    (r"\bwhat (?:day|date|time) is it\b|\bwhat(?:'s| is) (?:the date|today'?s date|the time)\b|\bwhat year is it\b|\bque (?:dia|hora) es\b|\bwelcher tag ist\b", 3.0),
]

# Past events: make sport/election style questions historical.
HISTORICAL = (
    r"\b(?:battle|war|world war|ww ?(?:i|ii|1|2)|civil war|revolution|century|ancient|medieval|empire|dynasty"
    r"|b\.?c\.?|a\.?d\.?|in history|historically|first ever|first)\b"
)

# ---------------------------------------------------------------------------
# STRUCTURED: programming vocabulary.  STRONG almost never appears outside
# tech talk; WEAK needs a second hint.
# ---------------------------------------------------------------------------

TECH_STRONG = (
    r"python3?|javascript|typescript|js|jsx|tsx|node\.?js|nodejs|npm|npx|yarn|pnpm|pip3?|conda|venv|virtualenv"
    r"|java(?!\s+(?:island|coffee|sea))|c\+\+|cpp|c#|csharp|\.net|dotnet|asp\.net|golang|rustc|cargo\.toml|kotlin|haskell|erlang|clojure"
    r"|php|laravel|symfony|ruby on rails|perl|objective-c|swiftui|matlab|fortran|cobol|verilog|vhdl|assembly language"
    r"|bash|zsh|shell script|powershell|cmd\.exe|batch file|command line|command-line|cli|shell command|terminal command"
    r"|sql|mysql|postgres(?:ql)?|psql|sqlite|mongodb|redis|elasticsearch|dynamodb|t-sql|plsql|nosql"
    r"|html5?|css3?|scss|tailwind|flexbox|css grid|div|jquery|reactjs|react native|next\.?js|vuejs|angularjs|svelte|nuxt|webpack|eslint"
    r"|django(?! unchained)|fastapi|express\.?js|spring boot|numpy|scipy|matplotlib|seaborn|tensorflow|pytorch|keras|scikit-learn|sklearn|opencv|beautifulsoup|bs4|pydantic"
    r"|docker|dockerfile|docker-compose|kubernetes|k8s|kubectl|helm chart|terraform|ansible|nginx|apache2|systemd|cron|crontab|linux|ubuntu|debian|centos|wsl"
    r"|git|github|gitlab|bitbucket|pull request|merge conflict|git rebase|git commit|git push|git pull"
    r"|vscode|vs code|visual studio|intellij|pycharm|vim|neovim|emacs|jupyter|colab|xcode|android studio"
    r"|api|apis|rest api|graphql|endpoint|endpoints|webhook|websocket|oauth|jwt|json|yaml|yml|xml|csv|toml|regex|regexp|regular expression"
    r"|localhost|cors|http request|status code|ssl certificate|ssh|dns record"
    r"|compiler|compiling|compile error|runtime error|syntax error|stack ?trace|traceback|segfault|segmentation fault|null pointer|nullpointer|undefined is not"
    r"|debug|debugging|debugger|refactor|refactoring|unit tests?|pytest|junit|linter"
    r"|boolean|arraylist|hashmap|hash map|hash table|linked list|binary tree|binary search tree|dict|dicts|dictionary in python|tuple|tuples"
    r"|for loop|while loop|for-loop|foreach|list comprehension|recursion|recursive function|lambda function|async|await|async/await|iterator|generator function|coroutine|mutex|thread safe|multithreading"
    r"|function|functions|constructor|polymorphism|class component|oop|object oriented|object-oriented|enum|getters?|setters?"
    r"|script|scripts|snippet|code|coding|codebase|codigo|código|codice|quellcode|programmcode|код|代码|代碼|程序|程式|编程|コード|プログラム|코드|프로그래밍|source code|programming|programmer|leetcode|hackerrank|big o|time complexity|space complexity"
    r"|excel formula|formula in excel|vba|google sheets|vlookup|xlookup|pivot table|arduino|raspberry pi|esp32"
    r"|stdout|stdin|stderr|env var|environment variable|\.env|config file|gitignore|\.gitignore|package\.json|requirements\.txt|makefile|cmake|gcc|clang|jvm|jdk|npm install|pip install"
    r"|usestate|useeffect|dataframe|dataframes|numpy array|mutable|immutable|borrow checker|type hint|type hints|generic type|null check|nullable|import error"
    r"|frontend|backend|front-end|back-end|full stack|full-stack|database|databases|foreign key|primary key|sql join|inner join|left join"
    r"|chmod|chown|sudo|grep|awk|sed|wget|ssh-keygen|scp|rsync|mkdir|rm -rf|port \d+|localhost:\d+"
    r"|error handling|try catch|try/except|try-except|stack overflow|stackoverflow|bug in my|my code|this code|my script|my program|my function|my app|my website|the function"
)

TECH_WEAK = (
    r"rust|swift|ruby|ts|dom|react|vue|angular|pandas|flask|selenium|dart|scala|elixir|flutter|vite|babel|jest|lua|rails|mongo|orm"
    r"|excel|spreadsheet|macro|macros|terminal|latex|curl|nano|query|queries|schema|migration|migrations|repo|join|algorithm|algorithms"
    r"|exception|exceptions|variable|variables|integer|array|arrays|pointer|pointers|closure|closures|promise|promises|callback|callbacks|decorator|method|methods|interface|struct|inheritance|lambda|props"
    r"|class|classes|object|objects|string|strings|list|lists|table|tables|loop|loops|bug|bugs|error|errors|compile|compiled"
    r"|server|servers|client|browser|button|form|forms|input|output|return|returns|print|prints|log|logs|file|files|folder|directory|path"
    r"|install|installing|installed|package|packages|library|libraries|module|modules|framework|plugin|extension|app|website|web page|webpage|deploy|deployment|build|version"
    r"|commit|branch|merge|push|clone|fork|crash|crashes|key|keys|value|values|null|undefined|nan|type|types|cache|cookie|cookies|session|token|tokens|hash|encrypt|decrypt"
    r"|retries|retry|timeout|handler|event listener|component|components|route|routes|router|middleware|request|requests|response|parse|parsing|vector|matrix|tensor|model training"
    r"|shortcut|keyboard shortcut|comment out|indentation|syntax|ide|editor|mac|windows|android|ios|chrome|firefox|safari|laptop|pc|wifi|router|printer|driver|drivers"
)

# Non-tech readings of tech words: remove before scoring.
TECH_FALSE_FRIENDS = (
    r"ball pythons?|monty python|python snake|rust on|rust (?:spots?|stains?|removal|belt)|go to|go for|go out|go on|go back|go with|go home|let'?s go"
    r"|swift(?:ly)?(?! ?ui)\b(?= (?:fox|river|current|response|action|kick))|taylor swift|ruby (?:ring|stone|red|slippers)|java (?:island|coffee)"
    r"|function of (?:the )?(?:mitochondria|ribosomes?|liver|kidneys?|heart|brain|lungs?|enzymes?|cells?|organs?|hormones?|proteins?|dna|rna)"
    r"|class (?:of \d+|reunion|schedule|trip|president|action)|(?:first|business|economy|middle|working|upper|lower) class|in class|my class(?:mates?)?"
    r"|(?:bed|dinner|coffee|kitchen|periodic|multiplication|round|pool|ping pong|times|water|picnic|dining|operating) tables?"
    r"|table (?:for (?:two|four|\d)|manners|tennis|salt|wine)|(?:reservar|reserve|book) (?:a |una |um )?(?:table|mesa)"
    r"|birthday party|party|love (?:letter|code)|dress code|zip code|postal code|area code|code of conduct|genetic code|da vinci code|morse code|cheat codes?|promo code|discount code|coupon code"
    r"|script for (?:a |an |my |the )?(?:movie|film|video|youtube|tiktok|play|skit|commercial|ad|podcast|scene|short film|presentation|speech|wedding)|movie script|film script"
    r"|stock (?:market|photos?)|string (?:theory|instrument|quartet|lights|cheese)|strings attached|pointer (?:dog|finger)|program (?:for (?:kids|seniors|students)|director)|tv program|exchange program|loyalty program|graduate program|training program"
    r"|debug(?:ging)? my life|bugs? (?:in|on) my (?:garden|plants|house|room|bed|kitchen)|bed ?bugs|stomach bug|the bug that|query letter|dom perignon|div(?:orce|ide|ision|ine|ersity|ert)\w*"
    r"|api (?:bee|honey)|sql (?:poem|haiku)|variable (?:star|rate|annuity|costs?|expenses)|environment(?:al)? (?:protection|science|impact)|array of (?:options|colors|flowers|choices)"
    r"|closure (?:of|for)|(?:store|shop|school|road|factory|plant|business) closures?|promise (?:me|you|ring)|broken promises?|inheritance (?:tax|law)|object(?:ive|ion)s?|method (?:acting|of (?:payment|transport))|scientific method"
)

# ---------------------------------------------------------------------------
# STRUCTURED: requests for code artefacts / output formats.
# ---------------------------------------------------------------------------

CODE_OBJECTS = (
    r"functions?|scripts?|programs?|class(?:es)?|methods?|quer(?:y|ies)|regex(?:es)?|regexp|regular expressions?|endpoints?|apis?"
    r"|components?|dockerfile|makefile|unit tests?|tests? for (?:this|it|my)|test cases?|snippets?|code|algorithms?|macros?|commands?|one-?liners?"
    r"|sql|css|html|yaml|json|csv|xml|toml|spreadsheet|schema|cron(?: job| expression)?|bots?|plugins?|extensions?|apps?|websites?|web ?pages?|landing page|cli|migrations?"
    r"|funci[oó]n|funcao|fonction|funktion|skript|requete|requête|consulta|codigo|code source|programa|programme|klasse|abfrage"
)

CODE_VERBS = (
    r"write|create|make|generate|give me|build|implement|code|show me|need|want|produce|draft|output|return|convert|translate|port|rewrite"
    r"|escribe|escriba|escreva|ecris|ecrire|schreib|schreibe|scrivi|crea|cree|crie|genera|gere|erstelle|erstell|haz|faz|fais|mach"
)

FORMAT_REQUEST = [
    r"\b(?:in|as|into|to|en|em|als|in a|as a|into a)\s+(?:a\s+)?(?:valid\s+)?(?:json|yaml|yml|csv|xml|toml|markdown table|html table|table|tabular|spreadsheet)\b",
    r"\b(?:json|yaml|yml|csv|xml|toml)\s*(?:format|array|object|file|schema|output|list|response)?\b",
    r"\b(?:make|create|generate|give|build|draw|put|format|organi[sz]e|present|show|output|return|turn|convert|display|compile|arrange|summari[sz]e|list)\b[^.?!\n]{0,40}\btables?\b",
    r"\btables? (?:of|comparing|with|showing|that|listing|for)\b",
    r"\b(?:markdown|comparison|pivot|html) tables?\b",
    r"\b(?:tabla|tableau|tabelle|tabela|tabella)\b",
]

# ---------------------------------------------------------------------------
# DEFAULT: creative / transform / chat / opinion / advice cues.  (pattern, weight)
# ---------------------------------------------------------------------------

CREATIVE_NOUNS = (
    r"poems?|poetry|story|stories|short story|song|songs|lyrics|haiku|limerick|sonnet|rap|raps|verse|verses|ode|ballad|essay|essays|joke|jokes|riddle|riddles"
    r"|tale|fable|fairy ?tale|novel|chapter|fanfic|fan fiction|dialogue|conversation between|screenplay|monologue|scene|play about|skit|speech|toast|eulogy|vows"
    r"|letter|cover letter|email|e-mail|message|text message|note|card|tweet|post|caption|captions|slogan|tagline|bio|description|product description|ad copy|advert|ad for|article|blog|blog post|newsletter|press release|review"
    r"|invitation|announcement|resume|cv|diary entry|journal entry|prayer|wish|greeting|story idea|plot|character|backstory|outline for (?:a|my) (?:novel|story|book)"
    r"|poema|poesia|cuento|historia|cancion|carta|discurso|poeme|histoire|chanson|lettre|discours|gedicht|geschichte|lied|rede|storia|canzone|lettera|musica|conto"
)

CREATIVE_VERBS = (
    r"write|compose|create|make up|give me|tell me|craft|draft|pen|invent|imagine|come up with|generate|produce"
    r"|escribe|escribeme|escriba|escreva|escrevе|ecris|ecrivez|ecris-moi|schreib|schreibe|scrivi|inventa|erfinde|cuentame|raconte"
)

DEFAULT_CUES = [
    # creative writing
    (r"\b(?:" + CREATIVE_VERBS + r")\b(?:\s+(?:me|us|him|her|them))?\s+(?:(?:a|an|the|some|short|long|little|funny|sad|cute|nice|sweet|new|\d+|one|two|three|few|brief|quick|formal|polite|professional|heartfelt|creative|catchy|romantic|epic|rhyming|personal|\d+[- ]word|[\w-]+-word|un|une|uma|um|una|ein|eine|einen|des|unos|(?!(?:today|tonight|yesterday|latest|recent|news|top|breaking|current|trending|headline|this|real|true)\w*\b)[\w'-]+)\s+){0,4}(?:" + CREATIVE_NOUNS + r")s?\b", 3.0, "creative"),
    (r"\b(?:continue|finish) (?:this|the|my) (?:story|poem|song|chapter|tale)\b|\bmake up (?:a|an|some)\b|\binvent (?:a|an|some)\b|\bonce upon a time\b", 3.0, "creative"),
    (r"\bdescribe\b.{0,60}\b(?:like|as if|as though) (?:you'?re|you are|a|an)\b|\bin the style of\b|\bfrom the perspective of\b|\bin (?:vivid|rich|sensory|great) detail\b|\bvividly\b|\b(?:futuristic|fictional|imaginary|fantasy|dystopian|utopian|magical|alien) (?:city|world|land|kingdom|planet|creature|society|place|town|village|character|story|setting)\b|^imagine\b", 3.0, "creative"),
    # transform given text
    (r"\b(?:summari[sz]e|summary of (?:this|the following|the above|my)|sum (?:this|it) up|tl;?dr|tldr|key points of (?:this|the)|resum(?:e|ir|eme|a|o)\b|resume (?:este|esse|ce)|zusammenfass\w*|fasse?\b.{0,20}\bzusammen|riassum\w*|总结|概括|要約|まとめ)", 3.0, "transform"),
    (r"\b(?:translate|translation|traduce|traduceme|traducir|traduza|traduzir|traduis|traduire|traduci|tradurre|ubersetze?|uebersetze?|übersetze?|переведи|перевод)\b|翻译|翻訳|\bhow (?:do you|do i|to|would you) say\b|\bin (?:english|spanish|french|german|italian|portuguese|japanese|chinese|korean|russian|arabic)\??$", 3.0, "translate"),
    (r"\b(?:rewrite|re-write|rephrase|paraphrase|reword|proofread|proof-read|copyedit|edit (?:this|my)|polish (?:this|my)|shorten|lengthen|simplify (?:this|my)|condense|make (?:this|it|my [\w ]{1,20}|the \w+) (?:sound |more |less |shorter|longer|better|clearer|nicer|friendlier|funnier|cooler|punchier)|correct (?:the |my |this )?(?:grammar|spelling|mistakes|errors in (?:this|my) (?:text|essay|sentence))|fix (?:the |my )?(?:grammar|spelling|wording|tone)|improve (?:this|my) (?:text|email|essay|letter|paragraph|sentence|writing|bio|cv|resume)|turn this into a (?:formal|polite|friendly|professional|casual)|reply to (?:this|her|him|them|my)|respond to (?:this|her|him|them)|answer (?:this|her|his) (?:email|message|text)|reescrib\w*|reformul\w*|corrig\w*|umschreib\w*|korrigier\w*)\b", 3.0, "transform"),
    (r"\b(?:classify|analy[sz]e|detect|determine|rate|label|identify) (?:the )?(?:overall )?(?:sentiment|tone|emotion|intent|toxicity|polarity|mood)\b|\b(?:sentiment|tone) of (?:this|the following|the text|my)\b", 3.0, "transform"),
    # role-play
    (r"\b(?:pretend|roleplay|role-play|role play|act as|act like|you are now|you'?re now|from now on you|imagine you(?:'re| are)|let'?s play|play a game|be my|you will be|you are (?:a|an|my) (?!idiot|stupid|wrong|right|good|bad|great|amazing|helpful)\w+|you'?re (?:a|an|my) (?!idiot|stupid|wrong|right|good|bad|great|amazing|helpful)\w+|du bist (?:ein|eine|mein)|eres (?:un|una|mi)|tu es (?:un|une|mon|ma)|voce e (?:um|uma|meu|minha)|sei (?:un|una|il mio))\b", 3.0, "roleplay"),
    # chat with the assistant
    (r"^(?:hi+|hello+|hey+|yo|sup|hiya|howdy|hola|bonjour|salut|hallo|ola|ciao|good (?:morning|afternoon|evening|night)|gm|thanks?|thank you|thx|ty|ok(?:ay)?|kk|cool|nice|great|awesome|perfect|lol|lmao|haha+|bye|goodbye|gracias|merci|danke|obrigad[oa]|grazie|yes|no|nope|yep|sure|wow|hmm+|test|testing)\b[\s\W]*(?:(?:there|again|so much|a lot|man|bro|dude|buddy|friend|chatgpt|gpt|claude|bot|ai|everyone|mate|you|!)\b[\s\W]*)*$", 3.0, "chat"),
    (r"\b(?:how are you|how r u|how are u|how'?s it going|what'?s up|wassup|whats good|who are you|what are you|who am i (?:speaking|talking|chatting) (?:to|with)|who is this\??$|am i (?:talking|speaking) to (?:a )?(?:human|bot|robot|real person)|what is your name|what'?s your name|tell me about yourself|are you (?:a |an )?(?:human|real|conscious|sentient|alive|robot|bot|ai|chatgpt|gpt)|can you help me(?: with something)?\??$|can i ask you something|let'?s (?:chat|talk)|talk to me|i'?m bored|im bored|i am bored|i'?m back|cheer me up|tell me (?:a joke|something (?:funny|nice|interesting))|dime algo|dis-moi quelque chose|pick a (?:random )?number|flip a coin|roll a die|do you (?:like|love|hate|have (?:feelings|a name)|think|dream|remember|know me))\b", 3.0, "chat"),
    # opinion
    (r"\b(?:what do you think|what'?s your (?:opinion|take|favou?rite)|your (?:opinion|thoughts|favou?rite)|do you (?:prefer|agree)|would you rather|which is better|is it (?:weird|normal|ok|okay|bad|rude|wrong|fine|safe to assume|worth it|a good idea)|rate my|roast me|roast my|be honest|of all time|overrated|underrated|thoughts on)\b", 4.5, "opinion"),
    # personal advice / feelings
    (r"\b(?:should i|shall i|what should i|what would you do|how (?:do|can|should|would) i (?:tell|deal|handle|cope|get over|get better|stop|become|convince|ask|make (?:friends|new friends|him|her)|improve|be more|be less|overcome|forgive|apologi[sz]e|talk to|approach|motivate|manage my|balance|find (?:love|a girlfriend|a boyfriend|motivation|my passion))|any (?:tips|advice|suggestions)|give me (?:some )?(?:tips|advice)|need (?:some )?(?:advice|help deciding)|help me (?:decide|choose|figure out|deal|cope|with my|explain to|come up|think of|name|plan|write)|i(?: feel| felt| am feeling|'m feeling|m feeling|'ve been feeling| have been feeling) |i(?:'?m| am) (?:so |really |very |kinda |a bit |feeling |just )*(?:sad|lonely|depressed|anxious|nervous|stressed|tired|scared|upset|angry|heartbroken|lost|confused about my|overwhelmed|happy|excited)\b|just got (?:dumped|fired|engaged|married)|broke up|\bmy (?:friend|best friend|boyfriend|girlfriend|bf|gf|wife|husband|partner|mom|mum|dad|mother|father|parents|boss|manager|coworker|colleague|kid|kids|son|daughter|ex|crush|sister|brother|family|teacher|landlord|roommate|neighbou?r|grandma|grandpa|therapist)\b|je me sens|me siento|ich fuhle mich|eu me sinto|mi sento|wie sage ich|como le digo|comment dire a)", 3.0, "advice"),
    # brainstorming / planning / recommendations
    (r"\b(?:brainstorm|ideas? (?:for|on|about|to)|some ideas|give me (?:\d+ |some |a few |ten |five |three )?(?:ideas|names|suggestions|ways|options|things|examples of (?:fun|good|creative))|suggest (?:some|a few|\d+|me)?|suggestions for|come up with|name ideas|names? for (?:a|an|my|our|the)|good name|what (?:should|can) i name|name my|what are some (?:good|fun|creative|cool|nice|interesting|easy|healthy|cheap|unique|cute)|things to do (?:on|when|with|for)|plan (?:a|an|my|our) |itinerary|workout plan|meal plan|diet plan|study plan|schedule for my|grocery list|shopping list|to-?do list|gift ideas|gift for|presents? for|recommend (?:me )?(?:a|an|some)|recommendations? for|ideias|idees|ideen|idee per|ideas para)\b", 2.5, "brainstorm"),
    (r"\bthat'?s (?:not right|wrong|correct|right|great|perfect|too long|too short)\b|\bi (?:don'?t|dont) (?:agree|understand)\b|\bi (?:meant|mean) \b", 2.0, "chat"),
]

# ---------------------------------------------------------------------------
# QUESTION cues
# ---------------------------------------------------------------------------

WH_START = (
    r"^(?:(?:so|ok(?:ay)?|and|but|hey|also|quick question|question|q|pls|please|btw|um+|uh+|yo)[,:. ]+)*"
    r"(?:what|whats|what's|wat|wut|who|whos|who's|whom|whose|when|whens|when's|where|wheres|where's|why|whys|how|hows|how's|which|is|are|was|were|does|do|did|can|could|will|would|has|have|should"
    r"|que|qué|quien|quienes|cual|cuales|cuando|donde|por que|porque|como|cuanto|cuantos|cuanta|cuantas|es verdad|o que"
    r"|qu'est-ce|qu'est ce|qui|quoi|quel|quelle|quels|quelles|quand|ou|pourquoi|comment|combien|est-ce"
    r"|was|wer|wen|wem|wann|wo|woher|wohin|warum|weshalb|wieso|wie|welche|welcher|welches|wieviel|wieviele|gibt es|ist|sind"
    r"|quem|qual|quais|quando|onde|quanto|quantos|quantas|quanta|e verdade"
    r"|chi|che|cosa|quale|quali|dove|perche|come|quanti|quante"
    r"|кто|что|где|когда|почему|зачем|как|сколько|какой|какая|какие)\b"
)

QUESTION_CUES = [
    (r"\b(?:define|definition of|meaning of|what does [\w' -]{1,40} (?:mean|stand for)|what is meant by|stand for\??$|significa|signifie|bedeutet|bedeutung|significado|significato|что значит|что такое|是什么意思|とは)\b", 3.0, "definition"),
    (r"^(?:explain|tell me about|teach me about|what is the difference|difference between|compare|explique|explica|erklar|erklare|spiega|describe (?:how|what|why|when|where|the (?:process|difference|structure|function|role|history|causes?|effects?|life ?cycle|properties|characteristics|symptoms|stages|steps|main|importance|impact|origin|rules))\b)\b", 2.0, "explain"),
    (r"^(?:give me|tell me|provide|write|i need|i want) (?:a |an )?(?:brief |short |quick |detailed |simple |concise )?(?:history|overview|explanation|rundown|background|timeline|summary) of\b", 2.5, "explain"),
    (r"\b(?:difference between|diferencia entre|difference entre|unterschied zwischen|diferenca entre|differenza tra)\b", 2.0, "compare"),
    (r"\bvs\.?(?= )|\bversus\b", 1.0, "vs"),
    (r"\bhow (?:does|do|did|is|are|was|were) [\w ,'-]{2,50} (?:work|made|formed|created|built|produced|caused|happen|evolve|die|grow)\b", 2.0, "mechanism"),
    (r"\b(?:what|which) (?:causes|caused|is the cause of|was the cause of|are the causes of)\b|\bwhy (?:is|are|do|does|did|was|were|can'?t|don'?t)\b", 2.0, "why"),
    (r"^(?:is|are|was|were|does|do|can) (?!there\b|it\b|this\b|that\b|you\b|i\b)(?:a|an|the)? ?[\w-]+(?: [\w-]+)? (?:a|an|the|considered|made of|related to|older|bigger|faster|heavier|larger|smaller)\b", 2.0, "fact-yesno"),
    (r"^(?:the )?(?:capital|author|inventor|founder|symptoms|causes|boiling point|melting point|freezing point|speed|distance|height|atomic (?:number|mass|weight)|chemical (?:formula|symbol)|formula|synonyms?|antonyms?|plural|history|origin|etymology|population|area|diameter|circumference|half[- ]life|life ?span|lifespan) (?:of|for)\b", 2.0, "fact-fragment"),
    (r"\b(?:who (?:wrote|invented|discovered|painted|composed|founded|built|created|directed|sang|was)|when (?:did|was|were)|in what year|what year did|which (?:country|city|planet|element|animal|ocean|continent|language|year|century))\b", 2.0, "fact"),
    (r"^(?:identify|classify|categori[sz]e|sort|group|determine|decide) (?:which|whether|if|each|these|the following|who|what)\b", 2.0, "fact"),
    (r"^(?:name|list|identify|state|enumerate|nombra|cite|nenne|liste|elenca) (?:me )?(?:the|all|every|each|some|two|three|four|five|ten|\d+|los|las|les|die|i|le|os|as)\b(?! (?:ideas|names|ways|tips|reasons to))", 2.0, "fact"),
    (r"\b(?:a\)|b\)|c\)|d\)|\(a\)|\(b\)|a\.|b\.)\s+\w", 1.0, "choices"),
    (r"\bwhich of the following\b|\btrue or false\b|\bmultiple choice\b|\bfill in the blank\b", 3.0, "quiz"),
]

MATH_CUES = [
    r"\d+(?:\.\d+)?\s*(?:[-+*/x×÷^]|times|plus|minus|divided by|multiplied by|mal|por|fois|mais|menos|moins)\s*\(?-?\d",
    r"\b\d+(?:\.\d+)?\s*%\s*(?:of|de|von|di)\b",
    r"\b(?:solve|simplify|factor(?:ise|ize)?|expand|evaluate|calculate|compute|differentiate|integrate|derivative|integral|limit of|equation|inequality|quadratic|polynomial|logarithm|probability|odds of rolling|expected value|standard deviation|variance|mean of|median of|percentage|square root|cube root|sqrt|perimeter|hypotenuse|circumference|volume of|area of|prime factor|lcm|gcd|greatest common|least common|resuelve|calcula|resoudre|calculer|berechne|lose|resolva|calcule|risolvi)\b",
    r"\b[xyz]\s*[\^²³]|\b\d*[xyz]\s*[-+=]\s*\d|[=]\s*-?\d+\s*$",
    r"\b(?:sin|cos|tan|log|ln|exp)\s*\(",
]

WORD_PROBLEM_CUES = (
    r"\b(?:how many|how much|how long|how far|how fast|how old will|what is the (?:total|probability|area|speed|average|ratio|cost)|find (?:the|x|y|her|his|their)|what will|when will|what is (?:its|his|her|their)|average|speed|if (?:a|an|the|he|she|they|you|i|we|each|it)\b|each|per|every|total|altogether|in all|left|remaining|together|twice|half|times as|more than|less than|fewer)\b"
)

UNITS = (
    r"km|kms|kilomet(?:er|re)s?|miles?|mi|m|meters?|metres?|cm|centimet(?:er|re)s?|mm|inch(?:es)?|in|feet|foot|ft|yards?|yd"
    r"|kg|kilos?|kilograms?|g|grams?|lbs?|pounds?|oz|ounces?|stones?|tons?|tonnes?"
    r"|l|liters?|litres?|ml|milliliters?|gallons?|gal|quarts?|pints?|cups?|tbsp|tablespoons?|tsp|teaspoons?|fl oz"
    r"|c|celsius|f|fahrenheit|kelvin|degrees?(?: celsius| fahrenheit)?|°c|°f"
    r"|mph|kph|km/h|kmh|m/s|knots?|acres?|hectares?|sq ?ft|square (?:feet|meters?|miles?|kilometers?)"
    r"|seconds?|minutes?|hours?|days?|weeks?|months?|years?|bytes?|kb|mb|gb|tb|calories|kcal|joules?|watts?|kwh|horsepower|hp"
)

UNIT_CONVERSION = [
    r"\b\d[\d.,]*\s*(?:" + UNITS + r")\s+(?:to|in|into|en|em|a|in)\s+(?:" + UNITS + r")\b",
    r"\bhow many (?:" + UNITS + r") (?:in|are in|is in|per) (?:a |an |one |\d+ )?(?:" + UNITS + r")\b",
    r"\bconvert\b.{0,30}\b(?:" + UNITS + r")\b",
]
