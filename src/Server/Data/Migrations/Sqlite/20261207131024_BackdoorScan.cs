using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace WebDefense.Server.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class BackdoorScan : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<double>(
                name: "EstimatedAsrAfter",
                table: "Runs",
                type: "REAL",
                nullable: true);

            migrationBuilder.AddColumn<double>(
                name: "EstimatedAsrBefore",
                table: "Runs",
                type: "REAL",
                nullable: true);

            migrationBuilder.AddColumn<bool>(
                name: "ModelChanged",
                table: "Runs",
                type: "INTEGER",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Outcome",
                table: "Runs",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "OutcomeBasis",
                table: "Runs",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "OutcomeSummary",
                table: "Runs",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "Scan",
                table: "Runs",
                type: "TEXT",
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "EstimatedAsrAfter",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "EstimatedAsrBefore",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "ModelChanged",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "Outcome",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "OutcomeBasis",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "OutcomeSummary",
                table: "Runs");

            migrationBuilder.DropColumn(
                name: "Scan",
                table: "Runs");
        }
    }
}
