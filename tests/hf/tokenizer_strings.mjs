// SPDX-License-Identifier: MIT
// The test strings of the tokenizer references, generated deterministically (no randomness
// from outside, so every run and every machine sees the same strings): baseStrings (the 62 of
// tools/gen_tokenizer_reference.mjs) and testStrings(specials), which adds hand-written
// cases, strings drawn from pools of scripts and symbols by a seeded generator, long strings
// and, for one vocabulary, its special and added tokens' texts embedded in text.

// Whitespace runs, digit runs of many lengths, contractions in both cases, CJK and kana,
// Korean, emoji (with ZWJ), combining marks, code, mixed case, newlines, punctuation.
export const baseStrings = [
    '', ' ', '  ', '   ', '\t', '\n', '\n\n', '\n\n\n', '\t\n', ' \n \n', '  \n\n  x',
    'Hello world', ' Hello world', 'Hello World', ' Hello World', ' Hello World!', 'Hello, world!',
    ' this is 🦙.cpp', 'w048 7tuijk dsdfhu', 'нещо на Български', 'ááá ÁÁÁ aÀb',
    'កាន់តែពិសេសអាចខលចេញ', '🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ (only emoji that has its own token)',
    'Hello', ' Hello', '  Hello', '   Hello', '    Hello', '    Hello\n    Hello',
    ' (', '\n =', "' era", "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
    "I'm, you're, we've, he'll, she'd, it's, THEY'RE, I'M, We'Ve, 'S", "don't DON'T Don'T",
    '1', '12', '123', '1234', '12345', '123456', '1234567', '12345678', '123456789',
    '3.14159 0x1F 1,000,000 ٣٤٥ ①②',
    'int main(void) {\n    return printf("%d\\n", a[i] >= b ? 1 : -1);\n}\n',
    'def f(x):\n\treturn x ** 2  # square\n\n\n', 'path/to/file.txt // comment\r\n',
    'camelCaseWord PascalCase XMLHttpRequest iPhone McDONALD', 'ALLCAPS lower Title mIxEd',
    '中文分词测试，这是一个句子。日本語のテキストとカタカナ。', '한국어 텍스트입니다', 'ひらがな カタカナ 漢字',
    'Ελληνικά κείμενο ΑΒΓ', 'naïve café résumé coöperate', 'e\u0301 a\u0308 n\u0303',
    '!!!???...  ---  ***', '$100 @user #tag 50% a&b', '\u00a0non\u00a0breaking\u2003spaces',
    'line1\nline2\r\nline3\rline4', '    \n\n\t  indented\n', 'email@example.com https://example.org/a?b=c',
];

// Cases the random ones may miss: NFC-sensitive forms, RTL text with direction marks,
// whitespace and newline mixtures, code, markup, invalid-looking escapes and byte-token texts.
const handWritten = [
    'A\u030a \u00c5 \u212b', // A + ring, Å, ANGSTROM SIGN (NFC turns all three into U+00C5)
    '\u1100\u1161\u11ab \ud55c', // decomposed and precomposed Hangul
    'o\u0308\u0301 e\u0323\u0302 a\u0301\u0302\u0303\u0304', // stacked combining marks
    '\u0041\u0301\u0327 \u1e0b\u0323 q\u0307\u0323', // canonical reordering
    '\ufb01 \u2126 \u00b5 \u2160', // compatibility forms NFC keeps (ﬁ, Ω sign -> Ω, µ, Ⅰ)
    'שלום עולם \u200fhello\u200e עברית', 'مرحبا بالعالم ١٢٣ hello', 'العربية: نص \u202bRTL\u202c',
    '\ufeffBOM at start', 'zero\u200bwidth\u200cjoiner\u200dparts', 'next\u0085line',
    'line\u2028separator\u2029para', '\u3000ideographic\u3000space', 'thin\u2009space',
    '\n\n\n\n\n\n', '\r\n\r\n', ' \n\t \n', '\t\t\tx', 'trailing   ', '   leading',
    'a\n\nb\n\n\nc', '     five spaces', 'x' + ' '.repeat(17) + 'y', '\t'.repeat(9) + 'tabs',
    '<0x0A> <0xFF> <unk> </s> <s>', '\\x80\\xff \\u0000 %00', '\ufffd\ufffd replacement',
    '\u2581 \u2581\u2581 lower one eighth block', '\u0120 \u010a byte-level look-alikes',
    '##ing [UNK] [CLS] [SEP] [MASK]', '<|endoftext|', '|>', '<|', '<|im_start', 'im_end|>',
    'for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }',
    'fn main() -> Result<(), Box<dyn Error>> {\n    println!("{:?}", x);\n}',
    'SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;',
    '<div class="x"><p>Hello &amp; <b>bye</b></p></div>', '{"key": [1, 2.5, true, null], "k2": "v"}',
    '# Title\n\n- item *one*\n- item **two**\n\n```python\nprint(1)\n```\n',
    'https://example.com/path?q=a%20b&x=1#frag', 'C:\\Users\\name\\file.txt',
    '1st 2nd 3rd 4th 10000th', '-1.5e-10 +2E+3 0.000001 1_000_000', '12:34:56 2024-01-31',
    '$€£¥₹ 100€ ¥2000', '∑∫√∞≠≤≥ ±×÷ →←', 'ℕℤℚℝℂ 𝔸𝔹 𝒜', '½ ¼ ¾ ² ³ ¹',
    '😀😁😂🤣 👍🏽👍🏿 👨‍👩‍👧‍👦 🏳️‍🌈 🇫🇷🇯🇵 1️⃣ ©️', '🧑‍💻 working, 🦙 llama, 🐍 python',
    'ไทยภาษา สวัสดีครับ', 'हिन्दी भाषा नमस्ते', 'বাংলা ভাষা', 'ქართული ენა', 'Հայերեն',
    'Tiếng Việt có dấu: Nguyễn Thị Minh Khai', 'İstanbul ıi İI ǅ ǈ ǋ', 'straße STRASSE ß ẞ',
    'ÀÉÎÕÜ àéîõü Ññ Çç Øø Åå Ææ Œœ', 'Ϊ ϋ ΐ ΰ ά έ ή ί ό ύ ώ', 'ё Ё й Й ї Ї',
    'ｆｕｌｌｗｉｄｔｈ　ＡＢＣ！', 'ﾊﾝｶｸ ｶﾀｶﾅ', '〜～・「」『』【】', '¡Hola! ¿Qué tal?',
    "it's I'M we'LL they'Re 'tis", "rock 'n' roll", 'O\'Neil D\'Artagnan',
];

// Pools the random strings draw their pieces from.
const words = ('the of and to in is that for it as was with be by on not he this are or his ' +
               'from at which but have an they you were her one all she there would their we ' +
               'him been has when who will more no if out so said what up its about into than ' +
               'them can only other new some could time these two may then do first any my now ' +
               'such like our over man me even most made after also did many before must through ' +
               'tokenizer llama Qwen gemma DeepSeek GPT Transformer attention embedding 2024').split(' ');
const pools = [
    () => pick(words), () => ' ' + pick(words), () => ' ' + pick(words), () => ' ' + pick(words),
    () => cap(pick(words)), () => pick(words).toUpperCase(),
    () => String(rand(1000000000) * (rand(3) ? 1 : rand(1000))), () => pick(['.', ',', '!', '?', ';', ':']),
    () => pick([' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', ' \n', '\u00a0', '\u3000', '\u2009']),
    () => pickChars('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~', 1 + rand(4)),
    () => pickChars('àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿœšžßÀÉÎÕÜÇĞİıŁńŒŠŸŽ', 1 + rand(3)),
    () => pickChars('abcdeAEIOUnoy', 1) + pick(['\u0300', '\u0301', '\u0302', '\u0303', '\u0308', '\u030a', '\u0327', '\u0323']),
    () => pickChars('αβγδεζηθικλμνξοπρσςτυφχψωΑΒΓΔΩ', 2 + rand(6)),
    () => pickChars('абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЖЯ', 2 + rand(8)),
    () => pickChars('ابتثجحخدذرزسشصضطظعغفقكلمنهوي', 2 + rand(6)) + pick(['', ' ', '\u200f']),
    () => pickChars('אבגדהוזחטיכלמנסעפצקרשת', 2 + rand(5)),
    () => pickChars('的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现其些', 1 + rand(8)),
    () => pickChars('あいうえおかきくけこさしすせそたちつてとなにぬねのアイウエオカキクケコサシスセソタチツテトナニヌネノーッャュョ', 1 + rand(6)),
    () => pickChars('가나다라마바사아자차카타파하한국어텍스트입니다', 1 + rand(5)),
    () => pickChars('กขคงจฉชซญดตถทนบปผพฟภมยรลวศษสหอฮะาิีึืุู่้', 2 + rand(5)),
    () => pickChars('कखगघचछजझटठडढणतथदधनपफबभमयरलवशषसहािीुूेैोौं्', 2 + rand(5)),
    () => pick(['😀', '😁', '🦙', '🚀', '✅', '❤️', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇫🇷', '🧑‍💻', '😶‍🌫️', '1️⃣', '©️', '🤖']),
    () => pickChars('∑∫√∞≠≤≥±×÷→←↑↓€£¥₹§¶•…‰′″℃№™Ω', 1 + rand(3)),
    () => pick(['\u200b', '\u200c', '\u200d', '\u200e', '\u200f', '\ufeff', '\u0085', '\u2028', '\ufffd', '\u00ad']),
    () => pick(['<0x0A>', '<unk>', '</s>', '<s>', '<|', '|>', '\u2581', '\u2581\u2581', '\u0120', '##', '[UNK]']),
    () => pick(['()', '{}', '[]', '=>', '->', '::', '==', '!=', '&&', '||', '//', '/*', '*/', '#include', 'return', 'self.', 'x_1', 'foo_bar', 'fooBar']),
];

// A fixed seed: the same strings on every run.
let state = 0x9e3779b97f4a7c15n;
function rand(n) {
    state ^= state << 13n & 0xffffffffffffffffn;
    state ^= state >> 7n;
    state ^= state << 17n & 0xffffffffffffffffn;
    return Number(state % BigInt(n));
}
const pick = (list) => list[rand(list.length)];
const cap = (w) => w.charAt(0).toUpperCase() + w.slice(1);
function pickChars(chars, n) {
    const all = Array.from(chars);
    let s = '';
    for (let i = 0; i < n; i++)
        s += all[rand(all.length)];
    return s;
}

function randomStrings(count) {
    const out = [];
    for (let i = 0; i < count; i++) {
        let s = '';
        for (let k = 1 + rand(24); k > 0; k--)
            s += pools[rand(pools.length)]();
        out.push(s);
    }
    return out;
}

// Long strings: prose, one run of spaces, digits, a word with no break, CJK, code.
function longStrings() {
    let prose = '';
    while (prose.length < 6000)
        prose += (rand(8) ? ' ' : '.\n') + pick(words);
    const code = 'static int f(int x) {\n    if (x < 2)\n        return x;\n    return f(x - 1) + f(x - 2);\n}\n';
    return [prose, ' '.repeat(1200), '1234567890'.repeat(300), 'a'.repeat(2000),
            pickChars('的一是不了人我在有他这中大来上国个到说们为子和你地出道', 2000), code.repeat(40),
            '\n'.repeat(70), '\t \n'.repeat(200), '😀'.repeat(300)];
}

// Strings that hold the texts of special and added tokens: whole, side by side, inside text,
// after spaces and newlines, and cut short. specials: the texts, in the vocabulary's order.
function specialStrings(specials) {
    const chosen = [];
    const step = Math.max(1, Math.floor(specials.length / 10));
    for (let i = 0; i < specials.length && chosen.length < 12; i += step)
        chosen.push(specials[i]);
    const out = [];
    for (let i = 0; i < chosen.length; i++) {
        const t = chosen[i], u = chosen[(i + 1) % chosen.length];
        out.push(t, t + 'Hello', 'Hello ' + t + ' world', t + u, t + '\n' + u + '\n', ' ' + t + ' ',
                 t + t, 'x' + t.slice(0, -1), t.slice(1) + 'y', t + 'user\nHi there!' + u + '\n');
    }
    return out;
}

// Every string one vocabulary is tested on.
export function testStrings(specials) {
    state = 0x9e3779b97f4a7c15n;
    return [...baseStrings, ...handWritten, ...randomStrings(260), ...longStrings(),
            ...specialStrings(specials)];
}
