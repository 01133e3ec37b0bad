BEGIN;
--
-- Add field comprehensive_score to supplierevaluation
--
ALTER TABLE "supplier_eval_supplierevaluation" ADD COLUMN "comprehensive_score" decimal NULL;
--
-- Add field last_evaluation_score to supplierevaluation
--
ALTER TABLE "supplier_eval_supplierevaluation" ADD COLUMN "last_evaluation_score" decimal NULL;
--
-- Create index supplier_name_idx on field(s) supplier_name of model supplierevaluation
--
CREATE INDEX "supplier_name_idx" ON "supplier_eval_supplierevaluation" ("supplier_name");
COMMIT;
