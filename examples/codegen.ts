// graphql-codegen: TypeScript types for the documents in src/, from the live server's schema.
// TERRAFUSION_URL (default http://127.0.0.1:8000/graphql) and TERRAFUSION_TOKEN pick the server.
import type { CodegenConfig } from "@graphql-codegen/cli";

const url = process.env.TERRAFUSION_URL ?? "http://127.0.0.1:8000/graphql";
const token = process.env.TERRAFUSION_TOKEN;

const config: CodegenConfig = {
  schema: [{ [url]: { headers: token ? { Authorization: `Bearer ${token}` } : {} } }],
  documents: ["src/**/*.ts", "!src/gql/**"],
  config: {
    // Every scalar mapped, strictly: an unmapped one would silently become `any`.
    scalars: {
      Date: "string",
      DateTime: "string",
      GeoJSON: "{ type: 'Polygon' | 'MultiPolygon'; coordinates: number[][][] | number[][][][] }",
      JSON: "unknown",
    },
    strictScalars: true,
    enumsAsTypes: true,
    useTypeImports: true,
  },
  // ES module imports (`./graphql.js`), as Node and tsc's NodeNext resolution want.
  importExtension: ".js",
  generates: {
    "src/gql/": { preset: "client", presetConfig: { fragmentMasking: false } },
    // Every type of the schema, not only those the documents use: the tests check its inputs.
    "src/gql/schema-types.ts": { plugins: ["typescript"] },
  },
};

export default config;
