BEGIN;
--
-- Add field grade to supplierevaluation
--
CREATE TABLE "new__supplier_eval_supplierevaluation" ("grade" varchar(2) NOT NULL, "evaluation_code" varchar(50) NOT NULL PRIMARY KEY, "supplier_name" varchar(200) NOT NULL, "comprehensive_score" decimal NULL, "last_evaluation_score" decimal NULL);
INSERT INTO "new__supplier_eval_supplierevaluation" ("evaluation_code", "supplier_name", "comprehensive_score", "last_evaluation_score", "grade") SELECT "evaluation_code", "supplier_name", "comprehensive_score", "last_evaluation_score", NULL FROM "supplier_eval_supplierevaluation";
DROP TABLE "supplier_eval_supplierevaluation";
ALTER TABLE "new__supplier_eval_supplierevaluation" RENAME TO "supplier_eval_supplierevaluation";
CREATE INDEX "supplier_eval_supplierevaluation_supplier_name_2e9ac508" ON "supplier_eval_supplierevaluation" ("supplier_name");
CREATE INDEX "supplier_name_idx" ON "supplier_eval_supplierevaluation" ("supplier_name");
COMMIT;
