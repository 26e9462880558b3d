using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WebDefense.Server.Data.Migrations.Sqlite
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
                type: "TEXT",
                nullable: true,
                oldClrType: typeof(Guid),
                oldType: "TEXT");

            migrationBuilder.AddColumn<string>(
                name: "Architecture",
                table: "Runs",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "DetectionPrecision",
                table: "Runs",
                type: "REAL",
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "DetectionRecall",
                table: "Runs",
                type: "REAL",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Kind",
                table: "Runs",
                type: "TEXT",
                nullable: false,
                defaultValue: "post-training");

            migrationBuilder.AddColumn<int>(
                name: "NumClasses",
                table: "Runs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "PoisonedCount",
                table: "Runs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<Guid>(
                name: "PoisonedTrainDatasetId",
                table: "Runs",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "SuspectedCount",
                table: "Runs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<int>(
                name: "TruePositives",
                table: "Runs",
                type: "INTEGER",
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
                type: "TEXT",
                nullable: false,
                defaultValue: new Guid("00000000-0000-0000-0000-000000000000"),
                oldClrType: typeof(Guid),
                oldType: "TEXT",
                oldNullable: true);
        }
    }
}
