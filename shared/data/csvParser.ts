import { TributaryError } from '../errors';

const COMMA = 0x2c;
const QUOTE = 0x22;
const LF = 0x0a;
const CR = 0x0d;

/** Receives one CSV record: its fields and the 1-based line on which it starts. */
export type CsvRecordHandler = (fields: string[], line: number) => void;

/**
 * An incremental RFC 4180 tokenizer: comma-separated, fields optionally in double quotes with `""` as
 * an escaped quote, quoted fields may span lines, records end at LF, CRLF or CR. Text arrives in
 * chunks of any size (a file read piece by piece), so no whole file ever has to be one string.
 * Blank lines are skipped. A leading byte-order mark is dropped.
 */
export class CsvParser {
  private fields: string[] = [];
  /** Part of the current field seen in earlier chunks or before an escaped quote. */
  private field = '';
  private inQuotes = false;
  /** Inside quotes, the previous character was a quote: the next one decides escape or close. */
  private quotePending = false;
  /** The current field's closing quote was seen; only a comma or a line end may follow. */
  private quoteClosed = false;
  private recordQuoted = false;
  /** The last chunk ended in CR: an LF at the start of the next one belongs to it. */
  private crPending = false;
  private line = 1;
  private recordLine = 1;
  private started = false;

  constructor(private readonly onRecord: CsvRecordHandler) {}

  /** Feeds the next piece of text. */
  push(chunk: string): void {
    let i = 0;
    if (!this.started && chunk.length > 0) {
      this.started = true;
      if (chunk.charCodeAt(0) === 0xfeff) i = 1;
    }
    if (this.crPending) {
      this.crPending = false;
      if (chunk.charCodeAt(i) === LF) i++;
    }
    const n = chunk.length;
    let start = i;
    for (; i < n; i++) {
      const c = chunk.charCodeAt(i);
      if (this.inQuotes) {
        if (this.quotePending) {
          this.quotePending = false;
          if (c === QUOTE) {
            this.field += '"';
            start = i + 1;
            continue;
          }
          this.inQuotes = false;
          this.quoteClosed = true;
          start = i;
          // Falls through: `c` is the first character after the closing quote.
        } else {
          if (c === QUOTE) {
            this.field += chunk.slice(start, i);
            this.quotePending = true;
            start = i + 1;
          } else if (c === LF) {
            this.line++;
          }
          continue;
        }
      }
      if (c === COMMA) {
        this.endField(chunk.slice(start, i));
        start = i + 1;
      } else if (c === LF || c === CR) {
        this.endField(chunk.slice(start, i));
        this.endRecord();
        if (c === CR) {
          if (i + 1 < n) {
            if (chunk.charCodeAt(i + 1) === LF) i++;
          } else {
            this.crPending = true;
          }
        }
        this.line++;
        this.recordLine = this.line;
        start = i + 1;
      } else if (this.quoteClosed) {
        throw new TributaryError(
          'DATA_FORMAT_UNSUPPORTED',
          `CSV line ${this.line}: expected a comma or a line end after a closing quote, got ${JSON.stringify(chunk[i])}.`,
        );
      } else if (c === QUOTE && i === start && this.field === '') {
        this.inQuotes = true;
        this.recordQuoted = true;
        start = i + 1;
      }
      // Any other character (including a quote inside an unquoted field) is part of the field.
    }
    if (start < n) this.field += chunk.slice(start, n);
  }

  /** Signals the end of input and emits the last record if it has no trailing line end. */
  end(): void {
    if (this.inQuotes && !this.quotePending) {
      throw new TributaryError(
        'DATA_FORMAT_UNSUPPORTED',
        `CSV line ${this.recordLine}: a quoted field is never closed.`,
      );
    }
    this.inQuotes = false;
    this.quotePending = false;
    if (this.fields.length > 0 || this.field !== '' || this.recordQuoted) {
      this.endField('');
      this.endRecord();
    }
  }

  private endField(tail: string): void {
    this.fields.push(this.field === '' ? tail : this.field + tail);
    this.field = '';
    this.quoteClosed = false;
  }

  private endRecord(): void {
    const fields = this.fields;
    this.fields = [];
    const blank = fields.length === 1 && fields[0] === '' && !this.recordQuoted;
    this.recordQuoted = false;
    if (!blank) this.onRecord(fields, this.recordLine);
  }
}

/** Parses a whole CSV text into records (for small inputs and tests). */
export function parseCsv(text: string): Array<{ fields: string[]; line: number }> {
  const records: Array<{ fields: string[]; line: number }> = [];
  const parser = new CsvParser((fields, line) => records.push({ fields, line }));
  parser.push(text);
  parser.end();
  return records;
}
