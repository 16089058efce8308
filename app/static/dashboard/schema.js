// What the server's schema offers, read once by introspection.
//
// Forms, the job list's columns and the result queries are all derived from it, so the
// dashboard follows the API as it grows (a new kind, a new enum value, a new parameter)
// without a change here.

const TYPE_REF = "kind name ofType { kind name ofType { kind name ofType { kind name } } }";

const INTROSPECTION = `query DashboardSchema {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types {
      kind name description isOneOf
      fields { name description args { name description defaultValue type { ${TYPE_REF} } } type { ${TYPE_REF} } }
      inputFields { name description defaultValue type { ${TYPE_REF} } }
      enumValues { name description }
      interfaces { name }
      possibleTypes { name }
    }
  }
}`;

/** The named type at the bottom of NON_NULL / LIST wrappers, and what wraps it. */
export function unwrap(ref) {
  let required = false;
  let list = false;
  let t = ref;
  if (t.kind === "NON_NULL") {
    required = true;
    t = t.ofType;
  }
  if (t.kind === "LIST") {
    list = true;
    t = t.ofType;
    if (t.kind === "NON_NULL") t = t.ofType;
  }
  return { required, list, kind: t.kind, name: t.name };
}

export class Schema {
  constructor(raw) {
    this.raw = raw;
    this.types = new Map(raw.types.map((t) => [t.name, t]));
  }

  static async load(api) {
    const data = await api.request(INTROSPECTION);
    return new Schema(data.__schema);
  }

  type(name) {
    return this.types.get(name);
  }

  enumValues(name) {
    return (this.type(name)?.enumValues ?? []).map((v) => v.name);
  }

  /** Mutations that start a job: `runX(input: RunXInput!)` returning a Job. */
  runMutations() {
    const mutation = this.type(this.raw.mutationType?.name);
    return (mutation?.fields ?? []).filter((f) => {
      const input = f.args.find((a) => a.name === "input");
      const returns = this.type(unwrap(f.type).name);
      return input && returns?.interfaces?.some((i) => i.name === "Job");
    });
  }

  /** The object types implementing Job (ReportJob, …). */
  jobTypes() {
    return this.type("Job")?.possibleTypes?.map((t) => this.type(t.name)) ?? [];
  }

  /** A job type's own short fields that tell its variant (reportType, exportFormat, …). */
  variantFields(typeName) {
    const common = new Set((this.type("Job")?.fields ?? []).map((f) => f.name));
    return (this.type(typeName)?.fields ?? []).filter((f) => {
      const t = unwrap(f.type);
      return (
        !common.has(f.name) && !t.list && (t.kind === "ENUM" || (t.kind === "SCALAR" && t.name === "String"))
      );
    });
  }

  /**
   * A selection of every field of `typeName` that needs no arguments, nested objects
   * included up to `depth` levels: how results are asked for without naming their fields.
   */
  selection(typeName, depth = 4) {
    const type = this.type(typeName);
    if (!type?.fields) return "";
    const parts = [];
    for (const f of type.fields) {
      if (f.args.some((a) => a.type.kind === "NON_NULL" && a.defaultValue === null)) continue;
      const t = unwrap(f.type);
      if (t.kind === "SCALAR" || t.kind === "ENUM") parts.push(f.name);
      else if (depth > 1 && t.kind === "OBJECT") {
        const inner = this.selection(t.name, depth - 1);
        if (inner) parts.push(`${f.name} { ${inner} }`);
      }
    }
    return parts.join(" ");
  }
}

/** Parse an introspected `defaultValue` (a GraphQL literal) into a JS value. */
export function parseLiteral(text) {
  if (text === null || text === undefined) return undefined;
  let i = 0;
  const src = text;
  const space = () => {
    while (i < src.length && /[\s,]/.test(src[i])) i++;
  };
  const value = () => {
    space();
    const c = src[i];
    if (c === '"') {
      let j = i + 1;
      let out = "";
      while (j < src.length && src[j] !== '"') {
        if (src[j] === "\\") {
          out += JSON.parse(`"${src.slice(j, j + 2)}"`);
          j += 2;
        } else out += src[j++];
      }
      i = j + 1;
      return out;
    }
    if (c === "[") {
      i++;
      const items = [];
      for (space(); src[i] !== "]"; space()) items.push(value());
      i++;
      return items;
    }
    if (c === "{") {
      i++;
      const obj = {};
      for (space(); src[i] !== "}"; space()) {
        const key = /^[_A-Za-z][_0-9A-Za-z]*/.exec(src.slice(i))[0];
        i += key.length;
        space();
        i++; // ':'
        obj[key] = value();
      }
      i++;
      return obj;
    }
    const word = /^-?[_0-9A-Za-z.+-]+/.exec(src.slice(i))[0];
    i += word.length;
    if (word === "true") return true;
    if (word === "false") return false;
    if (word === "null") return null;
    if (/^-?\d/.test(word)) return Number(word);
    return word; // an enum value
  };
  return value();
}
