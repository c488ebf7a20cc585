import { CsvParser, parseCsv } from './csvParser';

/** Feeds text in chunks of `size` characters. */
function parseChunked(text: string, size: number) {
  const records: Array<{ fields: string[]; line: number }> = [];
  const parser = new CsvParser((fields, line) => records.push({ fields, line }));
  for (let i = 0; i < text.length; i += size) parser.push(text.slice(i, i + size));
  parser.end();
  return records;
}

describe('CsvParser', () => {
  it('splits plain records and reports the line each starts on', () => {
    expect(parseCsv('a,b\n1,2\n3,4')).toEqual([
      { fields: ['a', 'b'], line: 1 },
      { fields: ['1', '2'], line: 2 },
      { fields: ['3', '4'], line: 3 },
    ]);
  });

  it('handles quoted fields with commas, escaped quotes and line breaks', () => {
    const records = parseCsv('name,note\n"Smith, J","said ""hi""\nand left"\nx,""\n');
    expect(records).toEqual([
      { fields: ['name', 'note'], line: 1 },
      { fields: ['Smith, J', 'said "hi"\nand left'], line: 2 },
      { fields: ['x', ''], line: 4 },
    ]);
  });

  it('accepts CRLF, lone CR, a byte-order mark and blank lines', () => {
    expect(parseCsv('\uFEFFa,b\r\n1,2\r\n\r\n3,4\r5,6\r\n')).toEqual([
      { fields: ['a', 'b'], line: 1 },
      { fields: ['1', '2'], line: 2 },
      { fields: ['3', '4'], line: 4 },
      { fields: ['5', '6'], line: 5 },
    ]);
  });

  it('keeps empty fields, including a trailing one', () => {
    expect(parseCsv('a,,c,\n')).toEqual([{ fields: ['a', '', 'c', ''], line: 1 }]);
  });

  it('gives the same records however the text is chunked', () => {
    const text = '\uFEFFh1,"h,2"\r\n"a ""q"" b",1\r\n"multi\r\nline",2\r\n\r\nlast,"3"';
    const whole = parseCsv(text);
    for (const size of [1, 2, 3, 5, 7]) expect(parseChunked(text, size)).toEqual(whole);
  });

  it('rejects an unterminated quote with the line it opened on', () => {
    expect(() => parseCsv('a,b\n1,"open\n2,3\n')).toThrow(
      expect.objectContaining({ code: 'DATA_FORMAT_UNSUPPORTED', message: expect.stringContaining('line 2') }),
    );
  });

  it('rejects text after a closing quote', () => {
    expect(() => parseCsv('a,b\n"x"y,1\n')).toThrow(
      expect.objectContaining({ code: 'DATA_FORMAT_UNSUPPORTED', message: expect.stringContaining('line 2') }),
    );
  });
});
