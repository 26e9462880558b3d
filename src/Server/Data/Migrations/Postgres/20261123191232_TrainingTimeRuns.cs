using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WebDefense.Server.Data.Migrations.Postgres
{
    /// <summary>Training-time runs (AdvrBD): optional model, architecture, class count, poisoned training set, detection counts; existing runs are post-training.</summary>
    public partial class TrainingTimeRuns : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AlterColumn<Guid>(
                name: "ModelId",
                table: "Runs",
                type: "uuid",
                nullable: true,
                oldClrType: typeof(Guid),
                oldType: "uuid");

            migrationBuilder.AddColumn<string>(
                name: "Architecture",
                table: "Runs",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "DetectionPrecision",
                table: "Runs",
                type: "double precision",
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "DetectionRecall",
                table: "Runs",
                type: "double precision",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Kind",
                table: "Runs",
                type: "text",
                nullable: false,
                defaultValue: "post-training");

            migrationBuilder.AddColumn<int>(
                name: "NumClasses",
                table: "Runs",
                type: "integer",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "PoisonedCount",
                table: "Runs",
                type: "integer",
                nullable: true);

            migrationBuilder.AddColumn<Guid>(
                name: "PoisonedTrainDatasetId",
                table: "Runs",
                type: "uuid",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "SuspectedCount",
                table: "Runs",
                type: "integer",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "TruePositives",
                table: "Runs",
                type: "integer",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "Architecture",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "DetectionPrecision",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "DetectionRecall",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "Kind",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "NumClasses",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "PoisonedCount",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "PoisonedTrainDatasetId",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "SuspectedCount",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "TruePositives",
                table: "Runs");

            migrationBuilder.AlterColumn<Guid>(
                name: "ModelId",
                table: "Runs",
                type: "uuid",
                nullable: false,
                defaultValue: new Guid("00000000-0000-0000-0000-000000000000"),
                oldClrType: typeof(Guid),
                oldType: "uuid",
                oldNullable: true);
        }
    }
}
