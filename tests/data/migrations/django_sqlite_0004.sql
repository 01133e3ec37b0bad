BEGIN;
--
-- Add field note to supplierevaluation
--
CREATE TABLE "new__supplier_eval_supplierevaluation" ("note" varchar(20) NOT NULL, "evaluation_code" varchar(50) NOT NULL PRIMARY KEY, "supplier_name" varchar(200) NOT NULL, "comprehensive_score" decimal NULL, "last_evaluation_score" decimal NULL, "grade" varchar(2) NOT NULL);
INSERT INTO "new__supplier_eval_supplierevaluation" ("evaluation_code", "supplier_name", "comprehensive_score", "last_evaluation_score", "grade", "note") SELECT "evaluation_code", "supplier_name", "comprehensive_score", "last_evaluation_score", "grade", 'x' FROM "supplier_eval_supplierevaluation";
DROP TABLE "supplier_eval_supplierevaluation";
ALTER TABLE "new__supplier_eval_supplierevaluation" RENAME TO "supplier_eval_supplierevaluation";
CREATE INDEX "supplier_eval_supplierevaluation_supplier_name_2e9ac508" ON "supplier_eval_supplierevaluation" ("supplier_name");
CREATE INDEX "supplier_name_idx" ON "supplier_eval_supplierevaluation" ("supplier_name");
--
-- Add field uniq to supplierevaluation
--
CREATE TABLE "new__supplier_eval_supplierevaluation" ("evaluation_code" varchar(50) NOT NULL PRIMARY KEY, "supplier_name" varchar(200) NOT NULL, "comprehensive_score" decimal NULL, "last_evaluation_score" decimal NULL, "grade" varchar(2) NOT NULL, "note" varchar(20) NOT NULL, "uniq" varchar(20) NULL UNIQUE);
INSERT INTO "new__supplier_eval_supplierevaluation" ("evaluation_code", "supplier_name", "comprehensive_score", "last_evaluation_score", "grade", "note", "uniq") SELECT "evaluation_code", "supplier_name", "comprehensive_score", "last_evaluation_score", "grade", "note", NULL FROM "supplier_eval_supplierevaluation";
DROP TABLE "supplier_eval_supplierevaluation";
ALTER TABLE "new__supplier_eval_supplierevaluation" RENAME TO "supplier_eval_supplierevaluation";
CREATE INDEX "supplier_eval_supplierevaluation_supplier_name_2e9ac508" ON "supplier_eval_supplierevaluation" ("supplier_name");
CREATE INDEX "supplier_name_idx" ON "supplier_eval_supplierevaluation" ("supplier_name");
--
-- Rename field note on supplierevaluation to remark
--
ALTER TABLE "supplier_eval_supplierevaluation" RENAME COLUMN "note" TO "remark";
--
-- Alter field remark on supplierevaluation
--
CREATE TABLE "new__supplier_eval_supplierevaluation" ("evaluation_code" varchar(50) NOT NULL PRIMARY KEY, "supplier_name" varchar(200) NOT NULL, "comprehensive_score" decimal NULL, "last_evaluation_score" decimal NULL, "grade" varchar(2) NOT NULL, "uniq" varchar(20) NULL UNIQUE, "remark" varchar(40) NOT NULL);
INSERT INTO "new__supplier_eval_supplierevaluation" ("evaluation_code", "supplier_name", "comprehensive_score", "last_evaluation_score", "grade", "uniq", "remark") SELECT "evaluation_code", "supplier_name", "comprehensive_score", "last_evaluation_score", "grade", "uniq", "remark" FROM "supplier_eval_supplierevaluation";
DROP TABLE "supplier_eval_supplierevaluation";
ALTER TABLE "new__supplier_eval_supplierevaluation" RENAME TO "supplier_eval_supplierevaluation";
CREATE INDEX "supplier_eval_supplierevaluation_supplier_name_2e9ac508" ON "supplier_eval_supplierevaluation" ("supplier_name");
CREATE INDEX "supplier_name_idx" ON "supplier_eval_supplierevaluation" ("supplier_name");
--
-- Remove field last_evaluation_score from supplierevaluation
--
ALTER TABLE "supplier_eval_supplierevaluation" DROP COLUMN "last_evaluation_score";
--
-- Rename model SupplierEvaluation to SupplierEval
--
ALTER TABLE "supplier_eval_supplierevaluation" RENAME TO "supplier_eval_suppliereval";
COMMIT;
